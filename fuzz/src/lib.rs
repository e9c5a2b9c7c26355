//! What the fuzz targets share: the configs they route against, the
//! sending side of each webhook scheme, and how a webhook target reads its
//! input.

pub mod delivery;
pub mod fixture;
pub mod sign;
