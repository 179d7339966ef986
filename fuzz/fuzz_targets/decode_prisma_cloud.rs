//! `prisma_cloud` bodies on the request path: utf8 -> decode (limits included) -> NDJSON;
//! every event must encode with a `raw` that parses and is an element of the body.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../common/pipeline.rs"]
mod pipeline;

fuzz_target!(|body: &[u8]| pipeline::fuzz_one("prisma_cloud", body));
