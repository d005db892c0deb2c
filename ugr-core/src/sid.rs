//! Semantic IDs: one code per level, parsed from and printed as `<a_12><b_3><c_200>`.
//!
//! The public indexes write level `k` (0-based) with the letter `a + k`. A [`Sid`]
//! is a small `Copy` value (no allocation); whether its codes fit a codebook is
//! checked by [`SidVocab::check`](crate::SidVocab::check).
//!
//! ```
//! use ugr_core::Sid;
//! let sid = Sid::parse("<a_12><b_3><c_200>")?;
//! assert_eq!(sid.codes(), &[12, 3, 200]);
//! assert_eq!(sid.to_string(), "<a_12><b_3><c_200>");
//! // The list form of the index files gives one token per string.
//! assert_eq!(Sid::parse_tokens(["<a_12>", "<b_3>", "<c_200>"])?, sid);
//! assert!(Sid::parse("<b_12>").is_err()); // level letters must run a, b, c, ...
//! # Ok::<(), ugr_core::Error>(())
//! ```

use crate::error::{Error, Result, SidParseReason};
use crate::vocab::MAX_LEVELS;

/// A Semantic ID: 1 to [`MAX_LEVELS`] codes, each below 65,536.
///
/// Ordering is lexicographic on the codes for SIDs of equal length, which is the
/// order of the catalog trie's leaves.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Sid {
    len: u8,
    codes: [u16; MAX_LEVELS],
}

impl Sid {
    /// A SID from its codes (1 to [`MAX_LEVELS`] of them).
    pub fn new(codes: &[u16]) -> Result<Self> {
        if codes.is_empty() || codes.len() > MAX_LEVELS {
            return Err(Error::LevelCount { got: codes.len() });
        }
        let mut sid = Sid {
            len: codes.len() as u8,
            codes: [0; MAX_LEVELS],
        };
        sid.codes[..codes.len()].copy_from_slice(codes);
        Ok(sid)
    }

    /// The codes, level 0 first.
    #[inline]
    pub fn codes(&self) -> &[u16] {
        &self.codes[..usize::from(self.len)]
    }

    /// Number of levels.
    #[inline]
    #[allow(clippy::len_without_is_empty)] // a SID is never empty
    pub fn len(&self) -> usize {
        usize::from(self.len)
    }

    /// Parses the concatenated form `<a_12><b_3><c_200>` (surrounding ASCII whitespace is ignored).
    pub fn parse(s: &str) -> Result<Self> {
        let bytes = s.as_bytes();
        let start = bytes.iter().take_while(|b| b.is_ascii_whitespace()).count();
        let end = bytes.len() - bytes.iter().rev().take_while(|b| b.is_ascii_whitespace()).count();
        if start >= end {
            return Err(Error::SidParse {
                offset: start,
                reason: SidParseReason::Empty,
            });
        }
        let mut codes = [0u16; MAX_LEVELS];
        let mut level = 0;
        let mut pos = start;
        while pos < end {
            if level == MAX_LEVELS {
                return Err(Error::SidParse {
                    offset: pos,
                    reason: SidParseReason::TooManyLevels,
                });
            }
            let (code, next) = parse_token(&bytes[..end], pos, level)?;
            codes[level] = code;
            level += 1;
            pos = next;
        }
        Sid::new(&codes[..level])
    }

    /// Parses the list form `["<a_12>", "<b_3>", "<c_200>"]`: one token per string, in level order.
    pub fn parse_tokens<'a, I>(tokens: I) -> Result<Self>
    where
        I: IntoIterator<Item = &'a str>,
    {
        let mut codes = [0u16; MAX_LEVELS];
        let mut level = 0;
        let mut offset = 0;
        for token in tokens {
            if level == MAX_LEVELS {
                return Err(Error::SidParse {
                    offset,
                    reason: SidParseReason::TooManyLevels,
                });
            }
            let bytes = token.trim_ascii().as_bytes();
            let (code, next) = parse_token(bytes, 0, level).map_err(|e| shift(e, offset))?;
            if next != bytes.len() {
                return Err(Error::SidParse {
                    offset: offset + next,
                    reason: SidParseReason::ExpectedClose,
                });
            }
            codes[level] = code;
            level += 1;
            offset += token.len();
        }
        if level == 0 {
            return Err(Error::SidParse {
                offset: 0,
                reason: SidParseReason::Empty,
            });
        }
        Sid::new(&codes[..level])
    }
}

fn shift(e: Error, by: usize) -> Error {
    match e {
        Error::SidParse { offset, reason } => Error::SidParse {
            offset: offset + by,
            reason,
        },
        other => other,
    }
}

/// The letter of a level in the public index files: `a` for level 0, `b` for level 1, ...
#[inline]
pub fn level_letter(level: usize) -> char {
    char::from(b'a' + level as u8)
}

/// Parses one `<x_N>` token for `level` at `pos`; returns the code and the next position.
fn parse_token(bytes: &[u8], pos: usize, level: usize) -> Result<(u16, usize)> {
    let err = |offset, reason| Error::SidParse { offset, reason };
    let mut p = pos;
    if bytes.get(p) != Some(&b'<') {
        return Err(err(p, SidParseReason::ExpectedOpen));
    }
    p += 1;
    let letter = b'a' + level as u8;
    if bytes.get(p) != Some(&letter) {
        return Err(err(
            p,
            SidParseReason::LevelLetter {
                expected: char::from(letter),
            },
        ));
    }
    p += 1;
    if bytes.get(p) != Some(&b'_') {
        return Err(err(p, SidParseReason::ExpectedUnderscore));
    }
    p += 1;
    let digits_start = p;
    let mut value: u32 = 0;
    while let Some(&b) = bytes.get(p) {
        if !b.is_ascii_digit() {
            break;
        }
        value = value * 10 + u32::from(b - b'0');
        if value > u32::from(u16::MAX) {
            return Err(err(digits_start, SidParseReason::CodeTooLarge));
        }
        p += 1;
    }
    if p == digits_start {
        return Err(err(p, SidParseReason::ExpectedCode));
    }
    if bytes.get(p) != Some(&b'>') {
        return Err(err(p, SidParseReason::ExpectedClose));
    }
    Ok((value as u16, p + 1))
}

impl PartialOrd for Sid {
    fn partial_cmp(&self, other: &Self) -> Option<core::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Sid {
    /// Lexicographic on the codes; a proper prefix sorts first.
    fn cmp(&self, other: &Self) -> core::cmp::Ordering {
        self.codes().cmp(other.codes())
    }
}

impl core::fmt::Display for Sid {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        for (level, code) in self.codes().iter().enumerate() {
            write!(f, "<{}_{}>", level_letter(level), code)?;
        }
        Ok(())
    }
}

impl core::fmt::Debug for Sid {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "Sid({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;

    #[test]
    fn round_trips_and_rejects() {
        let sid = Sid::parse(" <a_0><b_65535><c_7><d_1> ").unwrap();
        assert_eq!(sid.codes(), &[0, 65535, 7, 1]);
        assert_eq!(Sid::parse(&sid.to_string()).unwrap(), sid);
        for (bad, offset) in [
            ("", 0),
            ("<a_1", 4),
            ("<a_>", 3),
            ("<a_65536>", 3),
            ("<a_1><c_2>", 6),
            ("a_1>", 0),
            ("<a-1>", 2),
            ("<a_1>x", 5),
            ("<a_1><b_1><c_1><d_1><e_1><f_1><g_1><h_1><i_1>", 40),
        ] {
            match Sid::parse(bad) {
                Err(Error::SidParse { offset: o, .. }) => assert_eq!(o, offset, "{bad}"),
                other => panic!("{bad}: {other:?}"),
            }
        }
        assert!(Sid::parse_tokens(["<a_1>", "<b_2><c_3>"]).is_err());
        assert!(Sid::parse_tokens(core::iter::empty()).is_err());
        assert!(Sid::new(&[]).is_err());
    }

    #[test]
    fn orders_lexicographically() {
        let a = Sid::new(&[1, 2]).unwrap();
        let b = Sid::new(&[1, 10]).unwrap();
        let c = Sid::new(&[2, 0]).unwrap();
        assert!(a < b && b < c);
    }
}
