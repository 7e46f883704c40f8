//! The `sensei` command with a fault injected into the Worker's transformed
//! output (`SENSEI_FAULT=<kind>@<table>`, see [`sensei_tests::faults`]): the
//! verification tests run it to see the certificate catch each fault. The
//! `sensei` binary itself has no such switch.

fn main() {
    let spec = std::env::var("SENSEI_FAULT").unwrap_or_default();
    let fault = sensei_tests::faults::Fault::parse(&spec)
        .unwrap_or_else(|| panic!("SENSEI_FAULT={spec:?}: expected <kind>[:<arg>]@<table>"));
    sensei_cli::app::main_with(fault.executors())
}
