-- The modern target schema of the retail example: the legacy names
-- (cust_dob, ord_ts, prod_sku, ...) become readable ones, and the
-- Architect maps each column (sensei plan shows how, with confidences).
CREATE TABLE customer (
    id BIGINT PRIMARY KEY,
    first_name VARCHAR(40) NOT NULL,
    last_name VARCHAR(40) NOT NULL,
    email VARCHAR(120),
    date_of_birth DATE,
    phone_number VARCHAR(20),
    city VARCHAR(40),
    created_at TIMESTAMP NOT NULL
);

CREATE TABLE product (
    id BIGINT PRIMARY KEY,
    sku CHAR(8) NOT NULL,
    name VARCHAR(80) NOT NULL,
    unit_price DECIMAL(10,2) NOT NULL,
    quantity_on_hand INTEGER NOT NULL,
    discontinued BOOLEAN NOT NULL DEFAULT FALSE
);

CREATE TABLE purchase_order (
    id BIGINT PRIMARY KEY,
    customer_id BIGINT NOT NULL REFERENCES customer (id),
    ordered_at TIMESTAMP NOT NULL,
    status VARCHAR(12) NOT NULL,
    total_amount DECIMAL(12,2) NOT NULL,
    note TEXT
);

CREATE TABLE order_line (
    order_id BIGINT NOT NULL REFERENCES purchase_order (id),
    line_number INTEGER NOT NULL,
    product_id BIGINT NOT NULL REFERENCES product (id),
    quantity INTEGER NOT NULL,
    unit_price DECIMAL(10,2) NOT NULL,
    PRIMARY KEY (order_id, line_number)
);
