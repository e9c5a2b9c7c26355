//! placeholder

pub mod spawn;
