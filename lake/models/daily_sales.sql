-- gold.daily_sales: revenue, orders and units per day and product category (cancelled orders excluded).
-- key: day, category
-- total: revenue = SELECT sum(oi.quantity * oi.unit_price) FROM silver.orders o JOIN silver.order_items oi ON oi.order_id = o.id WHERE o.status <> 'Cancelled'
SELECT
    CAST(o.created_at AS DATE) AS day,
    coalesce(p.category, 'unknown') AS category,
    count(DISTINCT o.id) AS orders,
    sum(oi.quantity) AS units,
    sum(oi.quantity * oi.unit_price) AS revenue
FROM silver.orders AS o
JOIN silver.order_items AS oi ON oi.order_id = o.id
LEFT JOIN silver.products AS p ON p.id = oi.product_id
WHERE o.status <> 'Cancelled'
GROUP BY ALL
