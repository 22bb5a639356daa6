//! Integration tests of the nuthatch library, as users drive it: SQL through
//! a nuthatch `Session` over a real local root tier.

mod support;

mod bodies;

mod backends;
#[cfg(feature = "distributed")]
mod cluster;
mod compat;
mod coverage;
#[cfg(feature = "delta")]
mod delta;
mod encodings;
mod engine;
mod errors;
mod examples;
mod faults;
mod fidelity;
mod order;
mod outside;
mod parts;
#[cfg(feature = "polars")]
mod polars_frames;
mod pushdown;
mod python;
mod readme;
mod reliability;
mod rolling;
mod roundtrip;
#[cfg(feature = "sql")]
mod sql;
mod sql_functions;
mod stale;
mod stores;
mod system;
#[cfg(feature = "terracotta")]
mod terracotta;
mod through;
mod tiers;
#[cfg(feature = "zarr")]
mod zarr;
