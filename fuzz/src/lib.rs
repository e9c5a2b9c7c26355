//! What the fuzz targets share: the configs they route against, the
//! sending side of each webhook scheme, how a webhook target reads its
//! input, and the direct reading of crontab the cron target checks
//! schedules against.

pub mod crontab;
pub mod delivery;
pub mod fixture;
pub mod sign;
