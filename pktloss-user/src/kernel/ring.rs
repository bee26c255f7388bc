//! Kernel step: the consumer side of the detail ring buffer (`BPF_MAP_TYPE_RINGBUF`), mapped
//! into this process and read in place.
//!
//! Unlike a record-at-a-time reader, it publishes the consumer position once per batch of
//! records (every [`PUBLISH_BYTES`] consumed, and when a drain ends) instead of after every
//! record. The producing programs read that position on every reserve and commit; a store per
//! record by the reader on another CPU would make that cache line move between CPUs on almost
//! every event, which costs the traced host far more than it costs us.
//!
//! The layout is the kernel's (`kernel/bpf/ringbuf.c`): the consumer page (read-write, the
//! consumer position at offset 0), then the producer page (the producer position at offset 0)
//! and the data pages, mapped twice in a row so that a record that wraps around is contiguous.
//! Each record starts with an 8-byte header: a u32 length with a busy bit (not committed yet) and
//! a discard bit, and a u32 page offset that only the kernel uses.
use std::{
    os::fd::{AsFd as _, AsRawFd as _, RawFd},
    ptr::NonNull,
    sync::atomic::{AtomicU32, AtomicU64, Ordering},
};

use anyhow::{Context as _, Result, bail};
use aya::maps::MapData;

const BUSY_BIT: u32 = 1 << 31;
const DISCARD_BIT: u32 = 1 << 30;
const HEADER_BYTES: u64 = 8;

/// Consumed bytes after which the consumer position is published even in the middle of a
/// drain, so that a long drain of a full ring frees space for the producers as it goes.
pub(crate) const PUBLISH_BYTES: u64 = 64 << 10;

/// A shared mapping, unmapped on drop.
struct Mapping {
    ptr: NonNull<u8>,
    len: usize,
}

impl Mapping {
    fn new(fd: RawFd, len: usize, prot: libc::c_int, offset: usize) -> Result<Self> {
        let off = libc::off_t::try_from(offset).context("ring buffer offset")?;
        // SAFETY: a fresh shared mapping of the map fd; the kernel checks `len` and `offset`.
        let p = unsafe { libc::mmap(std::ptr::null_mut(), len, prot, libc::MAP_SHARED, fd, off) };
        if p == libc::MAP_FAILED {
            bail!("cannot map the ring buffer: {}", std::io::Error::last_os_error());
        }
        let ptr = NonNull::new(p.cast::<u8>()).context("mmap returned null")?;
        Ok(Self { ptr, len })
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: exactly the region mmap returned.
        unsafe { libc::munmap(self.ptr.as_ptr().cast(), self.len) };
    }
}

/// The reading end of a BPF ring buffer.
pub(crate) struct Ring {
    map: MapData,
    consumer: Mapping,
    /// Producer page followed by the data pages, twice.
    producer: Mapping,
    page: usize,
    mask: u64,
    /// Next record to read.
    pos: u64,
    /// The position last stored in the consumer page.
    published: u64,
}

// SAFETY: the mappings are owned; their memory is shared with the kernel only through the
// atomics below.
unsafe impl Send for Ring {}

/// What a drain read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Drained {
    /// Bytes consumed (headers, discarded records and padding included).
    pub bytes: u64,
    /// Why it stopped early, if it did.
    pub malformed: Option<Malformed>,
}

/// Why a drain stopped early.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Malformed {
    /// A record claims more bytes than the ring holds; reading stops at it.
    Length(u32),
}

impl Ring {
    /// Map the ring buffer `map` (its size is read from the kernel).
    pub(crate) fn new(map: MapData) -> Result<Self> {
        let size = map.info().context("ring buffer info")?.max_entries() as usize;
        // SAFETY: sysconf has no preconditions.
        let page = usize::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) }).unwrap_or(4096);
        if !size.is_power_of_two() || !size.is_multiple_of(page) {
            bail!("ring buffer size {size} is not a power-of-two multiple of the page size");
        }
        let fd = map.fd().as_fd().as_raw_fd();
        let consumer = Mapping::new(fd, page, libc::PROT_READ | libc::PROT_WRITE, 0)?;
        let producer = Mapping::new(fd, page + 2 * size, libc::PROT_READ, page)?;
        let mut ring = Self { map, consumer, producer, page, mask: size as u64 - 1, pos: 0, published: 0 };
        ring.pos = ring.consumer_pos().load(Ordering::Acquire);
        ring.published = ring.pos;
        Ok(ring)
    }

    /// File descriptor that polls readable while records wait.
    pub(crate) fn fd(&self) -> RawFd {
        self.map.fd().as_fd().as_raw_fd()
    }

    fn consumer_pos(&self) -> &AtomicU64 {
        // SAFETY: the consumer page is mapped read-write, page aligned, for as long as `self`.
        #[expect(clippy::cast_ptr_alignment, reason = "the mapping is page aligned, so 8-byte aligned")]
        unsafe {
            &*self.consumer.ptr.as_ptr().cast::<AtomicU64>()
        }
    }

    fn producer_pos(&self) -> &AtomicU64 {
        // SAFETY: as above, read-only.
        #[expect(clippy::cast_ptr_alignment, reason = "the mapping is page aligned, so 8-byte aligned")]
        unsafe {
            &*self.producer.ptr.as_ptr().cast::<AtomicU64>()
        }
    }

    fn publish(&mut self) {
        if self.published != self.pos {
            // Release: our reads of the records happen before the kernel may reuse them.
            self.consumer_pos().store(self.pos, Ordering::Release);
            self.published = self.pos;
        }
    }

    /// Bytes the ring holds.
    pub(crate) fn size(&self) -> u64 {
        self.mask + 1
    }

    /// Hand every committed record to `f`, in order. Stops at a record that is not committed
    /// yet (its producer is still writing it) and at a malformed one.
    pub(crate) fn drain(&mut self, mut f: impl FnMut(&[u8])) -> Drained {
        let start = self.pos;
        let malformed = self.drain_records(&mut f);
        self.publish();
        Drained { bytes: self.pos - start, malformed }
    }

    /// The loop of [`Ring::drain`], which publishes the position however it ends.
    fn drain_records(&mut self, f: &mut impl FnMut(&[u8])) -> Option<Malformed> {
        // SAFETY: the data pages follow the producer page, twice, for as long as `self`.
        let data = Data { base: unsafe { self.producer.ptr.as_ptr().add(self.page) }, mask: self.mask };
        loop {
            // Acquire pairs with the kernel's release store after it reserves a record.
            let prod = self.producer_pos().load(Ordering::Acquire);
            if prod == self.pos {
                break;
            }
            while self.pos != prod {
                // SAFETY: `data` is the mapped data area; `pos` is a record the kernel reserved.
                match unsafe { data.at(self.pos) } {
                    Rec::Busy => return None,
                    Rec::Malformed(len) => return Some(Malformed::Length(len)),
                    Rec::Discarded(next) => self.pos = next,
                    Rec::Data(rec, next) => {
                        f(rec);
                        self.pos = next;
                    }
                }
                if self.pos - self.published >= PUBLISH_BYTES {
                    self.publish();
                }
            }
        }
        None
    }
}

/// The data area: `2 * (mask + 1)` bytes, the data pages twice in a row.
struct Data {
    base: *const u8,
    mask: u64,
}

/// The record at a position.
#[derive(Debug, PartialEq, Eq)]
enum Rec<'a> {
    /// Reserved, not committed yet.
    Busy,
    /// Committed: its bytes and the position of the next record.
    Data(&'a [u8], u64),
    /// Discarded by its producer; the position of the next record.
    Discarded(u64),
    /// A length that does not fit in the ring.
    Malformed(u32),
}

impl Data {
    /// The record at `pos`.
    ///
    /// # Safety
    /// `base` must be valid for `2 * (mask + 1)` bytes and 8-byte aligned, `mask + 1` a power
    /// of two, and the bytes must stay valid while the returned record is used.
    unsafe fn at(&self, pos: u64) -> Rec<'_> {
        let size = self.mask + 1;
        let off = (pos & self.mask) as usize;
        #[expect(
            clippy::cast_ptr_alignment,
            reason = "`base` is 8-byte aligned and records are multiples of 8 bytes (see the SAFETY comment)"
        )]
        // SAFETY: `off` < size and records are multiples of 8 bytes, so the header is aligned
        // and within the first copy.
        let hdr = unsafe { &*self.base.add(off).cast::<AtomicU32>() };
        // Acquire pairs with the kernel's xchg that commits the record.
        let word = hdr.load(Ordering::Acquire);
        if word & BUSY_BIT != 0 {
            return Rec::Busy;
        }
        let len = word & !(BUSY_BIT | DISCARD_BIT);
        if u64::from(len) + HEADER_BYTES > size {
            return Rec::Malformed(len);
        }
        let next = pos + (u64::from(len) + HEADER_BYTES).next_multiple_of(8);
        if word & DISCARD_BIT != 0 {
            return Rec::Discarded(next);
        }
        // SAFETY: off + 8 + len <= 2 * size: the second copy makes a wrapping record contiguous.
        let rec = unsafe { std::slice::from_raw_parts(self.base.add(off + HEADER_BYTES as usize), len as usize) };
        Rec::Data(rec, next)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fake data area of `size` bytes, kept twice like the kernel's double mapping.
    struct Area {
        words: Vec<u64>,
        size: usize,
    }

    impl Area {
        fn new(size: usize) -> Self {
            Self { words: vec![0; 2 * size / 8], size }
        }

        /// Write a record header and payload at `pos` (both copies).
        fn put(&mut self, pos: u64, word: u32, payload: &[u8]) {
            let mut bytes = word.to_le_bytes().to_vec();
            bytes.extend_from_slice(&[0; 4]);
            bytes.extend_from_slice(payload);
            let area: &mut [u8] = bytemuck_bytes(&mut self.words);
            for (i, b) in bytes.iter().enumerate() {
                let at = (pos as usize + i) % self.size;
                area[at] = *b;
                area[at + self.size] = *b;
            }
        }

        fn data(&self) -> Data {
            Data { base: self.words.as_ptr().cast(), mask: self.size as u64 - 1 }
        }
    }

    fn bytemuck_bytes(w: &mut [u64]) -> &mut [u8] {
        // SAFETY: u64 has no padding; any byte pattern is valid.
        unsafe { std::slice::from_raw_parts_mut(w.as_mut_ptr().cast(), w.len() * 8) }
    }

    #[test]
    fn committed_discarded_busy_and_wrapping_records() {
        let mut a = Area::new(4096);
        a.put(0, 5, b"hello");
        a.put(16, DISCARD_BIT | 3, b"xyz");
        a.put(32, BUSY_BIT | 4, b"....");
        let d = a.data();
        // SAFETY: the area is 2 * size bytes, 8-aligned.
        unsafe {
            assert_eq!(d.at(0), Rec::Data(b"hello", 16));
            assert_eq!(d.at(16), Rec::Discarded(32));
            assert_eq!(d.at(32), Rec::Busy);
        }
        // A record that starts 16 bytes before the end wraps around: still one slice.
        let mut a = Area::new(4096);
        a.put(4096 + 4080, 20, b"0123456789abcdefghij");
        let d = a.data();
        // SAFETY: as above.
        unsafe {
            assert_eq!(d.at(4096 + 4080), Rec::Data(b"0123456789abcdefghij", 4096 + 4080 + 32));
        }
    }

    #[test]
    fn malformed_lengths_stop_the_reader() {
        let mut a = Area::new(4096);
        a.put(0, 4089, b"");
        a.put(8, 0x3fff_ffff, b"");
        let d = a.data();
        // SAFETY: as above.
        unsafe {
            assert_eq!(d.at(0), Rec::Malformed(4089));
            assert_eq!(d.at(8), Rec::Malformed(0x3fff_ffff));
        }
        // The largest record that fits.
        let mut a = Area::new(4096);
        a.put(0, 4088, &[7; 4088]);
        // SAFETY: as above.
        unsafe {
            assert!(matches!(a.data().at(0), Rec::Data(r, 4096) if r.len() == 4088));
        }
    }
}
