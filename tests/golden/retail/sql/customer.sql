SELECT
  "cust_id" AS "id",
  "cust_fname" AS "first_name",
  "cust_lname" AS "last_name",
  "cust_email" AS "email",
  "cust_dob" AS "date_of_birth",
  "cust_phone" AS "phone_number",
  "cust_city" AS "city",
  "created_ts" AS "created_at"
FROM source
