//! Bulk writes that must be all-or-nothing.

/// All-or-nothing writes of many rows.
#[crate::__async_trait]
pub trait BulkStore {}

/// Implements [`BulkStore`].
#[macro_export]
macro_rules! impl_bulk_store {
    ($store:ty, $db:ty) => {
        #[$crate::__async_trait]
        impl $crate::bulk::BulkStore for $store {}
    };
}
