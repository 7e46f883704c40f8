SELECT
  "prod_id" AS "id",
  "prod_sku" AS "sku",
  "prod_name" AS "name",
  "unit_price" AS "unit_price",
  "qty_on_hand" AS "quantity_on_hand",
  "discontinued" AS "discontinued"
FROM source
