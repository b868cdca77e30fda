//! latchkey: a user-authentication API server.
//!
//! Layers, in the direction requests flow: [`http`] (the axum edge) calls
//! [`auth`] (use-cases), which calls [`store`] (persistence) and renders
//! messages with [`mail`], whose worker delivers them. [`domain`] holds
//! the pure types all of them share. Configuration, startup, the CLI, telemetry
//! and the clock sit at the top.

pub mod auth;
pub mod cli;
pub mod clock;
pub mod config;
pub mod domain;
pub mod http;
pub mod mail;
pub mod metrics;
pub mod startup;
pub mod store;
pub mod telemetry;
