//! PLACEHOLDER until the real leap module lands (being written in parallel).
pub mod store;
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeapInfo {
    pub leap: i32,
    pub next_unix: i64,
    pub step: i32,
}
impl LeapInfo {
    pub const NONE: LeapInfo = LeapInfo {
        leap: 0,
        next_unix: 0,
        step: 0,
    };
}
