-- gold.order_timeline: per order, when each status was reached and how long each step took,
-- from the domain events (OrderPlaced, PaymentCaptured, ShipmentStatusChanged, OrderCancelled).
-- key: order_id
-- total: events = SELECT count(*) FROM silver.domain_events WHERE aggregate_type IN ('order', 'payment', 'shipment')
WITH events AS (
    SELECT
        CAST(aggregate_id AS BIGINT) AS order_id,
        event_type,
        status,  -- from the event's payload (the table's `unnest: [payload]`)
        CAST(occurred_at AS TIMESTAMPTZ) AS occurred  -- ISO-8601 UTC, as the outbox router sends it
    FROM silver.domain_events  -- each event once, however often the outbox replayed it
    WHERE aggregate_type IN ('order', 'payment', 'shipment')
),
reached AS (
    SELECT
        order_id,
        min(occurred) FILTER (WHERE event_type = 'OrderPlaced') AS created_at,
        min(occurred) FILTER (WHERE event_type = 'OrderPlaced' OR status = 'Approved') AS approved_at,
        min(occurred) FILTER (WHERE event_type = 'PaymentCaptured') AS paid_at,
        min(occurred) FILTER (WHERE event_type = 'ShipmentStatusChanged' AND status = 'Processing') AS processing_at,
        min(occurred) FILTER (WHERE event_type = 'ShipmentStatusChanged' AND status = 'Shipped') AS shipped_at,
        min(occurred) FILTER (WHERE event_type = 'ShipmentStatusChanged' AND status = 'InTransit') AS in_transit_at,
        min(occurred) FILTER (WHERE event_type = 'ShipmentStatusChanged' AND status = 'Received') AS received_at,
        min(occurred) FILTER (WHERE event_type = 'OrderCancelled') AS cancelled_at,
        count(*) AS events
    FROM events
    GROUP BY order_id
)
SELECT
    *,
    CASE
        WHEN cancelled_at IS NOT NULL THEN 'Cancelled'
        WHEN received_at IS NOT NULL THEN 'Received'
        WHEN in_transit_at IS NOT NULL THEN 'InTransit'
        WHEN shipped_at IS NOT NULL THEN 'Shipped'
        WHEN processing_at IS NOT NULL THEN 'Processing'
        ELSE 'Approved'
    END AS last_status,
    epoch(paid_at - created_at) AS seconds_to_pay,
    epoch(shipped_at - created_at) AS seconds_to_ship,
    epoch(received_at - shipped_at) AS seconds_in_delivery,
    epoch(received_at - created_at) AS seconds_to_receive
FROM reached
