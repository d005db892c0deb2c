//! Typed `u32` identifiers: vocabulary tokens, catalog items and trie nodes.
//!
//! Each is a transparent newtype so that a token can never be passed where an
//! item is expected. `NodeId` indexes the trie's flat arrays directly.
//!
//! ```
//! use ugr_core::{ItemId, TokenId};
//! let item = ItemId::new(42);
//! assert_eq!(item.as_u32(), 42);
//! assert_eq!(TokenId::new(7).as_usize(), 7);
//! ```

use serde::{Deserialize, Serialize};

macro_rules! u32_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(transparent)]
        #[repr(transparent)]
        pub struct $name(u32);

        impl $name {
            /// Wraps a raw `u32`.
            #[inline]
            pub const fn new(raw: u32) -> Self {
                Self(raw)
            }
            /// The raw value.
            #[inline]
            pub const fn as_u32(self) -> u32 {
                self.0
            }
            /// The raw value as an index.
            #[inline]
            pub const fn as_usize(self) -> usize {
                self.0 as usize
            }
        }

        impl core::fmt::Display for $name {
            fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
                core::fmt::Display::fmt(&self.0, f)
            }
        }

        impl From<$name> for u32 {
            #[inline]
            fn from(id: $name) -> u32 {
                id.0
            }
        }
    };
}

u32_id!(
    /// A token of the model vocabulary (special tokens, then every level's codes; see [`crate::vocab`]).
    TokenId
);
u32_id!(
    /// An item of the catalog, as numbered by the dataset's SID index.
    ItemId
);
u32_id!(
    /// A node of the catalog trie; node 0 is the root, nodes are numbered level by level.
    NodeId
);

impl<T> core::ops::Index<NodeId> for [T] {
    type Output = T;
    #[inline]
    fn index(&self, id: NodeId) -> &T {
        &self[id.as_usize()]
    }
}

impl<T> core::ops::Index<NodeId> for alloc::vec::Vec<T> {
    type Output = T;
    #[inline]
    fn index(&self, id: NodeId) -> &T {
        &self[id.as_usize()]
    }
}
