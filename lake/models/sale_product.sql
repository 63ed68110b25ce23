-- gold.sale_product: one row per product with its current price, stock available and sales figures:
-- the "SaleProduct" aggregate that replaces four synchronous service calls with one lookup.
-- key: product_id
-- total: units_sold = SELECT sum(oi.quantity) FROM silver.order_items oi JOIN silver.orders o ON o.id = oi.order_id JOIN silver.products p ON p.id = oi.product_id WHERE o.status <> 'Cancelled'
WITH sales AS (
    SELECT
        oi.product_id,
        sum(oi.quantity) AS units_sold,
        sum(oi.quantity * oi.unit_price) AS revenue,
        count(DISTINCT oi.order_id) AS orders,
        sum(oi.quantity) FILTER (WHERE o.created_at >= now() - INTERVAL 7 DAY) AS units_sold_7d,
        max(o.created_at) AS last_sold_at
    FROM silver.order_items AS oi
    JOIN silver.orders AS o ON o.id = oi.order_id
    WHERE o.status <> 'Cancelled'
    GROUP BY oi.product_id
)
SELECT
    p.id AS product_id,
    p.sku,
    p.name,
    p.category,
    p.active,
    pr.amount AS price,
    pr.currency,
    inv.on_hand,
    inv.reserved,
    inv.on_hand - inv.reserved AS available,
    coalesce(s.units_sold, 0) AS units_sold,
    coalesce(s.units_sold_7d, 0) AS units_sold_7d,
    coalesce(s.revenue, 0) AS revenue,
    coalesce(s.orders, 0) AS orders,
    s.last_sold_at
FROM silver.products AS p
LEFT JOIN silver.prices AS pr ON pr.product_id = p.id
LEFT JOIN silver.inventory AS inv ON inv.product_id = p.id
LEFT JOIN sales AS s ON s.product_id = p.id
