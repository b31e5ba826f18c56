//! PikPak's content hash, GCID (pikpak-protocol.md §8.8), written here from the reference for
//! the simulator alone: the driver has its own, and the two must agree only through the wire.
//!
//! Block size: 256 KiB, doubled while size / block > 512 and block < 2 MiB; SHA-1 of each
//! block; GCID = uppercase hex SHA-1 of the concatenated block digests.

use std::io::{self, Read};
use std::path::Path;

use sha1::{Digest, Sha1};

/// The GCID of empty content (SHA-1 of nothing).
pub const EMPTY: &str = "DA39A3EE5E6B4B0D3255BFEF95601890AFD80709";

/// The block size for content of `size` bytes.
pub fn block_size(size: u64) -> u64 {
    let mut block: u64 = 0x40000;
    while size / block > 0x200 && block < 0x200000 {
        block *= 2;
    }
    block
}

/// The GCID of `bytes`.
pub fn of_bytes(bytes: &[u8]) -> String {
    let block = block_size(bytes.len() as u64) as usize;
    let mut outer = Sha1::new();
    for chunk in bytes.chunks(block) {
        outer.update(Sha1::digest(chunk));
    }
    hex_upper(&outer.finalize())
}

/// The GCID of the file at `path`, read block by block.
pub fn of_file(path: &Path) -> io::Result<String> {
    let mut file = std::fs::File::open(path)?;
    let block = block_size(file.metadata()?.len()) as usize;
    let mut buf = vec![0u8; block];
    let mut outer = Sha1::new();
    loop {
        let mut filled = 0;
        while filled < block {
            match file.read(&mut buf[filled..])? {
                0 => break,
                n => filled += n,
            }
        }
        if filled == 0 {
            break;
        }
        outer.update(Sha1::digest(&buf[..filled]));
        if filled < block {
            break;
        }
    }
    Ok(hex_upper(&outer.finalize()))
}

fn hex_upper(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02X}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn block_sizes_follow_the_reference_table() {
        const MIB: u64 = 1 << 20;
        assert_eq!(block_size(0), 256 << 10);
        // Integer division: the block doubles once size / block reaches 513.
        assert_eq!(block_size(128 * MIB + (256 << 10) - 1), 256 << 10);
        assert_eq!(block_size(128 * MIB + (256 << 10)), 512 << 10);
        assert_eq!(block_size(256 * MIB + (512 << 10)), MIB);
        assert_eq!(block_size(512 * MIB + MIB), 2 * MIB);
        assert_eq!(block_size(100 << 30), 2 * MIB);
    }

    #[test]
    fn gcid_is_sha1_of_block_digests() {
        assert_eq!(of_bytes(b""), EMPTY);
        // One block: SHA-1 over SHA-1("abc"), computed independently (Python hashlib).
        assert_eq!(of_bytes(b"abc"), "0D3CED9BEC10A777AEC23CCC353A8C08A633045E");
        // Two blocks at 256 KiB: the file reader and the slice agree.
        let data: Vec<u8> = (0..(300u32 << 10)).map(|i| (i % 251) as u8).collect();
        let dir = std::env::temp_dir().join(format!("gcid-test-{}", std::process::id()));
        std::fs::write(&dir, &data).unwrap();
        let from_file = of_file(&dir).unwrap();
        std::fs::remove_file(&dir).unwrap();
        let mut outer = Sha1::new();
        outer.update(Sha1::digest(&data[..256 << 10]));
        outer.update(Sha1::digest(&data[256 << 10..]));
        assert_eq!(from_file, hex_upper(&outer.finalize()));
        assert_eq!(of_bytes(&data), from_file);
    }
}
