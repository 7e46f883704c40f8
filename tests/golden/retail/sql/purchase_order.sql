SELECT
  "ord_id" AS "id",
  "cust_id" AS "customer_id",
  "ord_ts" AS "ordered_at",
  "ord_status" AS "status",
  "ord_total" AS "total_amount",
  "ord_note" AS "note"
FROM source
