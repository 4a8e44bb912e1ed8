//! Gene names laid out for writing sentences fast: each name, after a space, in a fixed-width
//! slot, so that appending a name is one constant-size copy (no call into `memcpy`).

/// Slot widths with a constant-size copy; longer names take the variable-length path.
const WIDTHS: [usize; 3] = [16, 32, 64];

/// The sentence spelling of every gene (upper-cased), each stored after one space.
#[derive(Debug, Clone)]
pub(super) struct NameSlots {
    /// Slot width in bytes, or 0 when some name (with its space) is longer than 64 bytes.
    width: usize,
    /// Name `g` (with its space) at `g * width`, zero padded; `width` spare bytes at the end.
    slots: Vec<u8>,
    /// All names (with their spaces) back to back, for the variable-length path.
    joined: Vec<u8>,
    /// Where name `g` starts in `joined`; one more entry marks the end.
    starts: Vec<usize>,
    /// Length of the longest name with its space.
    longest: usize,
}

impl NameSlots {
    /// Slots for `names` (already in their sentence spelling).
    pub(super) fn new(names: &[String]) -> Self {
        let longest = names.iter().map(|n| n.len() + 1).max().unwrap_or(1);
        let width = WIDTHS.into_iter().find(|&w| longest <= w).unwrap_or(0);
        let mut joined = Vec::with_capacity(names.iter().map(|n| n.len() + 1).sum());
        let mut starts = Vec::with_capacity(names.len() + 1);
        let mut slots = vec![0u8; names.len() * width + width];
        for (g, name) in names.iter().enumerate() {
            starts.push(joined.len());
            joined.push(b' ');
            joined.extend_from_slice(name.as_bytes());
            if width > 0 {
                slots[g * width] = b' ';
                slots[g * width + 1..g * width + 1 + name.len()].copy_from_slice(name.as_bytes());
            }
        }
        starts.push(joined.len());
        Self {
            width,
            slots,
            joined,
            starts,
            longest,
        }
    }

    /// Length of gene `g`'s name with its space.
    #[inline]
    pub(super) fn spaced_len(&self, g: u32) -> usize {
        self.starts[g as usize + 1] - self.starts[g as usize]
    }

    /// Length of the longest name with its space.
    pub(super) fn longest(&self) -> usize {
        self.longest
    }

    /// Spare bytes a buffer needs past the end of its text for [`NameSlots::write`].
    pub(super) fn slack(&self) -> usize {
        self.width
    }

    /// Writes the names of `genes`, separated by single spaces, into `buf` from `pos` and
    /// returns the position after them. `buf` must hold the text plus [`NameSlots::slack`]
    /// bytes: each copy writes a whole slot, and the next name overwrites the padding.
    pub(super) fn write(&self, buf: &mut [u8], pos: usize, genes: &[u32]) -> usize {
        match self.width {
            16 => self.write_slots::<16>(buf, pos, genes),
            32 => self.write_slots::<32>(buf, pos, genes),
            64 => self.write_slots::<64>(buf, pos, genes),
            _ => self.write_joined(buf, pos, genes),
        }
    }

    fn write_slots<const W: usize>(&self, buf: &mut [u8], mut pos: usize, genes: &[u32]) -> usize {
        for (k, &g) in genes.iter().enumerate() {
            // The first name goes without its space: its slot is read one byte on (the table
            // has `W` spare bytes at the end, so this stays inside it).
            let skip = usize::from(k == 0);
            let at = g as usize * W + skip;
            buf[pos..pos + W].copy_from_slice(&self.slots[at..at + W]);
            pos += self.spaced_len(g) - skip;
        }
        pos
    }

    fn write_joined(&self, buf: &mut [u8], mut pos: usize, genes: &[u32]) -> usize {
        for (k, &g) in genes.iter().enumerate() {
            let from = self.starts[g as usize] + usize::from(k == 0);
            let name = &self.joined[from..self.starts[g as usize + 1]];
            buf[pos..pos + name.len()].copy_from_slice(name);
            pos += name.len();
        }
        pos
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn written(names: &[&str], genes: &[u32]) -> String {
        let names: Vec<String> = names.iter().map(|s| s.to_string()).collect();
        let slots = NameSlots::new(&names);
        let bound: usize = genes.iter().map(|&g| slots.spaced_len(g)).sum();
        let mut buf = vec![b'#'; 6 + bound + slots.slack()];
        let end = slots.write(&mut buf, 6, genes);
        buf.truncate(end);
        assert_eq!(&buf[..6], b"######", "nothing written before the start");
        String::from_utf8(buf).unwrap().split_off(6)
    }

    #[test]
    fn names_are_joined_by_single_spaces_at_every_slot_width() {
        for long in [1, 14, 15, 16, 30, 31, 40, 63, 64, 65, 200] {
            let long_name = "X".repeat(long);
            let names = ["A", "BC", long_name.as_str(), "ÉPÉE-1"];
            let genes = [2, 0, 3, 1, 2, 2];
            let expected = genes
                .iter()
                .map(|&g| names[g as usize])
                .collect::<Vec<_>>()
                .join(" ");
            assert_eq!(written(&names, &genes), expected, "longest name {long}");
            assert_eq!(written(&names, &[]), "");
            assert_eq!(written(&names, &[3]), "ÉPÉE-1");
        }
    }
}
