//! The body of `POST /v1/admin/import` and a backup's chunks: record frames
//! (`dynamo_backup::records::decode_all`), each record's state decoded as
//! the node decodes a stored one (`dynamo_node::storage::decode`). What
//! decodes re-encodes to the same frames.

#![no_main]

use dynamo_backup::records::{decode_all, put_record};
use libfuzzer_sys::fuzz_target;

fuzz_target!(
    init: dynamo_fuzz::write_seeds_if_asked(dynamo_fuzz::seeds::backup_records),
    |data: &[u8]| {
        let Ok(records) = decode_all(data) else {
            return;
        };
        let mut again = Vec::new();
        for record in &records {
            put_record(&mut again, &record.key, &record.value);
            let _ = dynamo_node::storage::decode(&record.key, &record.value);
        }
        assert_eq!(again, data, "records re-encode to what they were read from");
    }
);
