//! Fuzz the capture-file reader (`pktloss::capture::read_bytes`): any input must give a
//! capture or a one-line error, never a panic, a hang or a huge allocation; an accepted
//! capture must render in every report format and export as pcapng.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pktloss::{
    capture,
    render::{pcapng::pcapng_bytes, report::{ReportFormat, render}},
};

fn check(data: &[u8]) {
    match capture::read_bytes(data) {
        Ok(file) => {
            for format in [
                ReportFormat::Text,
                ReportFormat::Markdown,
                ReportFormat::Json,
            ] {
                let _ = render(&file, format);
            }
            let _ = pcapng_bytes(&file);
        }
        Err(e) => {
            let msg = e.to_string();
            assert!(
                !msg.is_empty() && !msg.contains('\n'),
                "unclear error: {msg:?}"
            );
        }
    }
}

fuzz_target!(|data: &[u8]| {
    // The input as a whole file (mostly stops at the checksums)...
    check(data);
    // ...and the rest of it behind a valid header, to reach the inflater and the JSON parser.
    if let Some((&mode, rest)) = data.split_first() {
        let wrapped = match mode % 3 {
            0 => capture::encode_container(rest, false).ok(),
            1 => capture::encode_container(rest, true).ok(),
            _ => Some(capture::raw_container(
                capture::FORMAT_MAJOR,
                capture::FORMAT_MINOR,
                capture::FLAG_DEFLATE,
                (rest.len() as u64).saturating_mul(u64::from(mode / 3 % 16 + 1)),
                rest,
            )),
        };
        if let Some(bytes) = wrapped {
            check(&bytes);
        }
    }
});
