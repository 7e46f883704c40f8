SELECT
  "ord_id" AS "order_id",
  "line_no" AS "line_number",
  "prod_id" AS "product_id",
  "qty" AS "quantity",
  "unit_price" AS "unit_price"
FROM source
