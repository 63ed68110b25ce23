"""Only the optional C extension of the decode stage; everything else is in pyproject.toml."""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "lakeport.ingestion._fastjson",
            ["ingestion/_fastjson.c"],
            optional=True,  # no C compiler: decoding takes the general (pyarrow.json) path
            extra_compile_args=["-O3", "-std=c99", "-Wall", "-Wextra", "-Wno-unused-parameter"],
        )
    ]
)
