//! The one integration-test binary (one link step). Every server binds 127.0.0.1:0; every
//! load is bounded by a request count and wrapped in a timeout; no test asserts on speed.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs, unreachable_pub)]

mod cli;
mod common;
mod crafted;
mod dashboard;
mod faults;
mod fuzz;
mod gateway;
mod h3;
mod hostile;
mod layering;
mod netem;
mod oracle;
mod pools;
mod probe;
mod replay;
mod results;
mod roles;
mod run;
mod scenario;
mod scope;
mod shards;
mod stall;
mod verdicts;
mod ws;
