"""Writes the repository's own schema-matching pairs (group `sensei`) in the
corpus layout (README.md): sensei/<pair>/source/<table>.csv,
sensei/<pair>/target/<table>.csv (header and sample rows) and
sensei/<pair>/truth.csv. Deterministic (seeded).

Each pair is a legacy table and its modern counterpart: the columns a
person would map, with realistic names on both sides and values drawn from
the same generator for both (the target may reorder, drop, and add columns
that have no source).

    python3 make_pairs.py   # rewrites the files next to this script
"""
import csv
import os
import random

R = random.Random(7)
FIRST = ["Ana", "Bjorn", "Chloe", "Dmitri", "Emeka", "Fatima", "Giulia", "Hiro", "Ines", "Jonas", "Kavya", "Liam"]
LAST = ["Silva", "Berg", "Martin", "Ivanov", "Okafor", "Haddad", "Rossi", "Tanaka", "Costa", "Weber", "Iyer", "Walsh"]
CITY = ["Lisbon", "Oslo", "Lyon", "Kazan", "Lagos", "Beirut", "Turin", "Osaka", "Porto", "Bremen", "Pune", "Cork"]
STREET = ["Main St", "Oak Ave", "Harbour Rd", "Mill Lane", "King St", "Elm Way"]


def day(a=1950, b=2005):
    return f"{R.randint(a, b)}-{R.randint(1, 12):02d}-{R.randint(1, 28):02d}"


def ts(a=2015, b=2024):
    return f"{day(a, b)} {R.randint(0, 23):02d}:{R.randint(0, 59):02d}:{R.randint(0, 59):02d}"


def phone():
    return f"+1-555-{R.randint(100, 999)}-{R.randint(1000, 9999)}"


def email(i):
    return f"{R.choice(FIRST).lower()}.{R.choice(LAST).lower()}{i}@example.com"


def money(a=1, b=5000):
    return f"{R.uniform(a, b):.2f}"


GEN = {
    "id": lambda i: str(1000 + i),
    "fk": lambda i: str(R.randint(1, 400)),
    "first": lambda i: R.choice(FIRST),
    "last": lambda i: R.choice(LAST),
    "full": lambda i: f"{R.choice(FIRST)} {R.choice(LAST)}",
    "email": email,
    "phone": lambda i: phone(),
    "dob": lambda i: day(),
    "date": lambda i: day(2015, 2024),
    "ts": lambda i: ts(),
    "city": lambda i: R.choice(CITY),
    "street": lambda i: f"{R.randint(1, 999)} {R.choice(STREET)}",
    "zip": lambda i: f"{R.randint(10000, 99999)}",
    "country": lambda i: R.choice(["PT", "NO", "FR", "RU", "NG", "LB", "IT", "JP"]),
    "money": lambda i: money(),
    "qty": lambda i: str(R.randint(1, 50)),
    "status": lambda i: R.choice(["NEW", "PAID", "SHIPPED", "CANCELLED"]),
    "flag": lambda i: R.choice(["Y", "N"]),
    "bool": lambda i: R.choice(["true", "false"]),
    "sku": lambda i: f"SKU-{R.randint(1000, 9999)}",
    "text": lambda i: R.choice(["fragile", "gift", "", "call first", "leave at door"]),
    "pct": lambda i: f"{R.uniform(0, 30):.1f}",
    "code": lambda i: R.choice(["A1", "B2", "C3", "D4"]),
    "int": lambda i: str(R.randint(0, 10000)),
    "year": lambda i: str(R.randint(1990, 2024)),
    "iban": lambda i: R.choice(["GB82WEST12345698765432", "DE89370400440532013000", "FR1420041010050500013M02606"]),
    "title": lambda i: R.choice(["Engineer", "Analyst", "Manager", "Clerk"]),
    "hours": lambda i: f"{R.uniform(0, 12):.2f}",
}

# pair: (source table, target table, [(source col, target col, generator)], target-only columns)
PAIRS = {
    "crm_customers": ("CUSTMAST", "customer", [
        ("CUST_NO", "customer_id", "id"), ("CUST_FNAME", "first_name", "first"), ("CUST_LNAME", "last_name", "last"),
        ("EMAIL_ADDR", "email", "email"), ("PHONE_NBR", "phone_number", "phone"), ("BIRTH_DT", "date_of_birth", "dob"),
        ("CITY_NM", "city", "city"), ("CRT_TS", "created_at", "ts")], [("loyalty_tier", "code")]),
    "erp_orders": ("ORDHDR", "sales_order", [
        ("ORD_NO", "order_number", "id"), ("CUST_NO", "customer_id", "fk"), ("ORD_DT", "order_date", "date"),
        ("ORD_STAT", "status", "status"), ("ORD_AMT", "total_amount", "money"), ("SHIP_DT", "shipped_on", "date"),
        ("RMKS", "remarks", "text")], []),
    "inventory_items": ("ITEMMST", "product", [
        ("ITEM_ID", "product_id", "id"), ("ITEM_SKU", "sku", "sku"), ("ITEM_DESC", "description", "text"),
        ("UNIT_PRC", "unit_price", "money"), ("QTY_OH", "quantity_on_hand", "qty"), ("DISC_FLG", "is_discontinued", "flag")],
        [("category", "code")]),
    "hr_employees": ("EMP", "employee", [
        ("EMPNO", "employee_id", "id"), ("ENAME", "full_name", "full"), ("JOB", "job_title", "title"),
        ("MGR", "manager_id", "fk"), ("HIREDATE", "hired_on", "date"), ("SAL", "salary", "money"),
        ("DEPTNO", "department_id", "fk")], []),
    "billing_invoices": ("INVHDR", "invoice", [
        ("INV_NBR", "invoice_number", "id"), ("ACCT_NO", "account_id", "fk"), ("INV_DT", "issued_on", "date"),
        ("DUE_DT", "due_date", "date"), ("INV_TOT", "total", "money"), ("TAX_AMT", "tax_amount", "money"),
        ("PD_FLG", "is_paid", "flag")], [("currency", "code")]),
    "shipping_addresses": ("ADDR", "address", [
        ("ADDR_ID", "address_id", "id"), ("CUST_ID", "customer_id", "fk"), ("ADDR_LN1", "street_line", "street"),
        ("CITY", "city", "city"), ("ZIP_CD", "postal_code", "zip"), ("CTRY_CD", "country_code", "country")], []),
    "bank_accounts": ("ACCTS", "bank_account", [
        ("ACCT_ID", "account_id", "id"), ("CUST_REF", "customer_id", "fk"), ("IBAN_NO", "iban", "iban"),
        ("OPEN_DT", "opened_on", "date"), ("BAL", "balance", "money"), ("ACCT_TYP", "account_type", "code")], []),
    "web_users": ("tblUsers", "app_user", [
        ("UserID", "id", "id"), ("UserName", "username", "first"), ("EMail", "email", "email"),
        ("PwdChangedOn", "password_changed_at", "ts"), ("IsActive", "active", "bool"), ("LastLogin", "last_login_at", "ts")],
        [("locale", "code")]),
    "payroll_timesheets": ("TIMECARD", "timesheet_entry", [
        ("TC_ID", "entry_id", "id"), ("EMP_NO", "employee_id", "fk"), ("WORK_DT", "work_date", "date"),
        ("HRS", "hours_worked", "hours"), ("OT_HRS", "overtime_hours", "hours"), ("PROJ_CD", "project_code", "code")], []),
    "retail_order_lines": ("ORDLN", "order_item", [
        ("ORD_NO", "order_id", "fk"), ("LN_NO", "line_number", "qty"), ("ITEM_ID", "product_id", "fk"),
        ("ORD_QTY", "quantity", "qty"), ("UNIT_PRC", "unit_price", "money"), ("DISC_PCT", "discount_percent", "pct")], []),
    "clinic_patients": ("PATIENT", "patient", [
        ("PAT_ID", "patient_id", "id"), ("PAT_FN", "given_name", "first"), ("PAT_LN", "family_name", "last"),
        ("DOB", "birth_date", "dob"), ("TEL", "phone", "phone"), ("ZIP", "postcode", "zip"),
        ("REG_DT", "registered_on", "date")], [("blood_type", "code")]),
    "supplier_master": ("VNDMST", "supplier", [
        ("VND_NO", "supplier_id", "id"), ("VND_NM", "name", "full"), ("CNTCT_EMAIL", "contact_email", "email"),
        ("CNTCT_PH", "contact_phone", "phone"), ("CTRY", "country", "country"), ("PMT_TERMS", "payment_terms_days", "qty"),
        ("YR_EST", "year_founded", "year")], []),
}


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    for pair, (stable, ttable, cols, extra) in PAIRS.items():
        rows = [{c[2] + f"#{k}": GEN[c[2]](i) for k, c in enumerate(cols)} for i in range(25)]
        s_cols = [c[0] for c in cols]
        t_order = list(range(len(cols)))
        R.shuffle(t_order)
        t_cols = [cols[k][1] for k in t_order] + [e[0] for e in extra]
        out = os.path.join(here, "sensei", pair)
        os.makedirs(os.path.join(out, "source"), exist_ok=True)
        os.makedirs(os.path.join(out, "target"), exist_ok=True)
        with open(os.path.join(out, "source", f"{stable}.csv"), "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(s_cols)
            for r in rows:
                w.writerow([r[c[2] + f"#{k}"] for k, c in enumerate(cols)])
        # The target holds other rows drawn from the same distributions.
        trows = [{c[2] + f"#{k}": GEN[c[2]](i + 500) for k, c in enumerate(cols)} for i in range(25)]
        with open(os.path.join(out, "target", f"{ttable}.csv"), "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(t_cols)
            for r in trows:
                w.writerow([r[cols[k][2] + f"#{k}"] for k in t_order] + [GEN[e[1]](0) for e in extra])
        with open(os.path.join(out, "truth.csv"), "w", newline="") as f:
            w = csv.writer(f, lineterminator="\n")
            w.writerow(["source_table", "source_column", "target_table", "target_column"])
            for s, t, _ in sorted(cols):
                w.writerow([stable, s, ttable, t])


if __name__ == "__main__":
    main()
