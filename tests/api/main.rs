//! Black-box tests: each spawns the real server on a random port with its own
//! fresh database, on every configured backend, and drives it over HTTP.

mod helpers;

mod abuse;
mod admin;
mod bad_input;
mod cli;
mod clients;
mod disk;
mod edge;
mod email;
mod import;
mod mfa;
mod oauth;
mod observability;
mod oidc;
mod origin_contract;
mod outage;
mod passkeys;
mod persistence;
mod sessions;
mod smtp;
mod tokens;
mod webhooks;
