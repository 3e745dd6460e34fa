//! Credentials, both ways: the loader's own (service-account keys → access tokens) and the
//! trigger's (who may send events). Pure: tokens are built and checked here, fetched by hosts.

pub mod adc;
pub mod google_keys;
pub mod jwt;
pub mod service_account;
pub mod trigger;
