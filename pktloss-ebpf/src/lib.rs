//! Marker library so that `pktloss-user/build.rs` can depend on this crate; the programs live in
//! `main.rs` and its modules.
#![no_std]
