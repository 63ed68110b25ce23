-- gold.customer_360: one row per customer with contact data, current shipping address, order count,
-- lifetime value, last order and open shipments.
-- key: customer_id
-- total: orders = SELECT count(*) FROM silver.orders o JOIN silver.customers c ON c.id = o.customer_id
WITH orders AS (
    SELECT
        customer_id,
        count(*) AS orders,
        coalesce(sum(total) FILTER (WHERE status <> 'Cancelled'), 0) AS lifetime_value,
        max(created_at) AS last_order_at,
        arg_max(id, created_at) AS last_order_id
    FROM silver.orders
    GROUP BY customer_id
),
open_shipments AS (
    SELECT o.customer_id, count(*) AS open_shipments
    FROM silver.shipments AS s
    JOIN silver.orders AS o ON o.id = s.order_id
    WHERE s.status NOT IN ('Received', 'Cancelled')
    GROUP BY o.customer_id
),
address AS (
    SELECT customer_id, arg_max({'street': street, 'city': city, 'postcode': postcode, 'country': country}, updated_at) AS a
    FROM silver.addresses
    WHERE kind = 'shipping'
    GROUP BY customer_id
)
SELECT
    c.id AS customer_id,
    c.email,
    c.full_name,
    c.phone,
    c.loyalty_tier,
    c.created_at AS customer_since,
    address.a.street AS street,
    address.a.city AS city,
    address.a.postcode AS postcode,
    address.a.country AS country,
    coalesce(orders.orders, 0) AS orders,
    coalesce(orders.lifetime_value, 0) AS lifetime_value,
    orders.last_order_at,
    orders.last_order_id,
    coalesce(open_shipments.open_shipments, 0) AS open_shipments
FROM silver.customers AS c
LEFT JOIN orders ON orders.customer_id = c.id
LEFT JOIN open_shipments ON open_shipments.customer_id = c.id
LEFT JOIN address ON address.customer_id = c.id
