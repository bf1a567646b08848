//! In-place writes into a decoding batch's key/value buffers, so that rows leaving and joining a
//! running batch cost a copy of those rows only.
//!
//! Rebuilding the batch by restacking ([`super::KvCache::restack`]) copies every kept position of
//! every row, the rows that stay included, into fresh buffers: 6–11 s of the sampling of a default
//! GRPO step, about an eighth of it. Here a joining row is written into a finished row's slot of
//! the buffers the batch already decodes in, laid out as restacking would lay it out, and a
//! shrinking batch moves its last rows into the freed slots. Positions whose bits the slot already
//! holds (the prompt every row shares) are compared, not written.

use std::cell::Cell;
use std::ops::Range;

use candle_core::{CpuStorage, InplaceOp1, InplaceOp2, Layout, Tensor};

use crate::error::{Error, Result};
use crate::kernels::custom_op::Strided;

/// Where a joining row goes in a `[slots, heads, capacity, d]` buffer: row `row` of a `[rows,
/// heads, len, d]` source, holding its positions `keep`, the first `front` of them at columns
/// `0..front` and the rest right-aligned to end at column `end`, zeros between.
#[derive(Clone, Copy)]
pub(crate) struct Placement<'a> {
    /// The buffer's slot written.
    pub slot: usize,
    /// The source's row read.
    pub row: usize,
    /// The source positions kept, ascending.
    pub keep: &'a [u32],
    /// How many of them go to the first columns.
    pub front: usize,
    /// The column after the row's last position: the batch's length.
    pub end: usize,
    /// The first columns, at most `front`, that every slot holds with the same bits: those of
    /// them whose bits the row shares are left as they are.
    pub compare: usize,
}

/// Writes `placement` of `src` into `buffer` (both CPU f32, last dimension contiguous). Returns
/// the first of the `compare` columns whose bits differ from the row's (`compare` if none).
pub(crate) fn place_row(buffer: &Tensor, src: &Tensor, placement: Placement<'_>) -> Result<usize> {
    let p = placement;
    let (slots, heads, cap, d) = buffer.dims4()?;
    let (rows, src_heads, len, src_d) = src.dims4()?;
    let n = p.keep.len();
    if p.slot >= slots
        || p.row >= rows
        || (src_heads, src_d) != (heads, d)
        || p.front > n
        || n > p.end
        || p.end > cap
        || p.compare > p.front
        || !p.keep.windows(2).all(|w| w[0] < w[1])
        || p.keep.last().is_some_and(|&k| k as usize >= len)
    {
        return Err(Error::InvalidInput(format!(
            "place_row: slot {} of a [{slots}, {heads}, {cap}, {d}] buffer cannot take row {} of a \
             [{rows}, {src_heads}, {len}, {src_d}] source keeping {n} positions ({} in front) to \
             end at {} ({} compared)",
            p.slot, p.row, p.front, p.end, p.compare
        )));
    }
    let op = Place {
        p,
        differs: Cell::new(p.compare),
    };
    buffer.inplace_op2(src, &op)?;
    Ok(op.differs.get())
}

/// Copies columns `columns` of slot `from` of `buffer` (`[slots, heads, capacity, d]`, CPU f32) to
/// slot `to`.
pub(crate) fn move_row(
    buffer: &Tensor,
    from: usize,
    to: usize,
    columns: Range<usize>,
) -> Result<()> {
    let (slots, _, cap, _) = buffer.dims4()?;
    if from >= slots || to >= slots || from == to || columns.end > cap {
        return Err(Error::InvalidInput(format!(
            "move_row: slot {from} to {to} of {slots}, columns {columns:?} of {cap}"
        )));
    }
    Ok(buffer.inplace_op1(&Move { from, to, columns })?)
}

struct Place<'a> {
    p: Placement<'a>,
    differs: Cell<usize>,
}

impl InplaceOp2 for Place<'_> {
    fn name(&self) -> &'static str {
        "kv-place-row"
    }

    fn cpu_fwd(
        &self,
        s1: &mut CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<()> {
        let (CpuStorage::F32(dst), CpuStorage::F32(src)) = (s1, s2) else {
            candle_core::bail!("kv-place-row: f32 buffers only");
        };
        let (_, heads, _, d) = l1.shape().dims4()?;
        let (to, from) = (
            Strided::of(l1, "kv-place-row")?,
            Strided::of(l2, "kv-place-row")?,
        );
        let p = &self.p;
        let n = p.keep.len();
        let own = n - p.front;
        let mut differs = p.compare;
        for h in 0..heads {
            let dst_at = |col: usize| to.at(p.slot, h, col);
            let src_at = |pos: u32| from.at(p.row, h, pos as usize);
            // The compared columns the slot already holds with the row's bits stay as they are.
            let same = (0..p.compare)
                .take_while(|&c| {
                    let (x, y) = (&dst[dst_at(c)..][..d], &src[src_at(p.keep[c])..][..d]);
                    x.iter().zip(y).all(|(a, b)| a.to_bits() == b.to_bits())
                })
                .count();
            differs = differs.min(same);
            for (c, &pos) in p.keep[..p.front].iter().enumerate().skip(same) {
                dst[dst_at(c)..][..d].copy_from_slice(&src[src_at(pos)..][..d]);
            }
            for c in p.front..p.end - own {
                dst[dst_at(c)..][..d].fill(0.0);
            }
            for (c, &pos) in (p.end - own..p.end).zip(&p.keep[p.front..]) {
                dst[dst_at(c)..][..d].copy_from_slice(&src[src_at(pos)..][..d]);
            }
        }
        self.differs.set(differs);
        Ok(())
    }
}

struct Move {
    from: usize,
    to: usize,
    columns: Range<usize>,
}

impl InplaceOp1 for Move {
    fn name(&self) -> &'static str {
        "kv-move-row"
    }

    fn cpu_fwd(&self, storage: &mut CpuStorage, layout: &Layout) -> candle_core::Result<()> {
        let CpuStorage::F32(buf) = storage else {
            candle_core::bail!("kv-move-row: f32 buffers only");
        };
        let (_, heads, _, d) = layout.shape().dims4()?;
        let at = Strided::of(layout, "kv-move-row")?;
        for h in 0..heads {
            for c in self.columns.clone() {
                let (from, to) = (at.at(self.from, h, c), at.at(self.to, h, c));
                buf.copy_within(from..from + d, to);
            }
        }
        Ok(())
    }
}
