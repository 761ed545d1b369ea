//! The CronJob controller.

pub mod schedule;
