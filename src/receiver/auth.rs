//! Authentication: the one place an unauthenticated request becomes an [`AcceptedRequest`],
//! the only type the spool will store.

use crate::config::SourceConfig;
use crate::spool::RawRequest;

use super::ReceiveError;

/// A request that passed its source's checks. Its field is private to this module, so no other
/// code can make one.
#[derive(Debug)]
pub struct AcceptedRequest {
    raw: RawRequest,
}

impl AcceptedRequest {
    pub fn raw(&self) -> &RawRequest {
        &self.raw
    }

    pub fn into_raw(self) -> RawRequest {
        self.raw
    }
}

/// Checks a request against its source. Sources have no authentication options yet, so every
/// request to a configured source is accepted; per-source secrets and allow-lists come here.
pub(super) fn authenticate(
    _source: &SourceConfig,
    raw: RawRequest,
) -> Result<AcceptedRequest, ReceiveError> {
    Ok(AcceptedRequest { raw })
}
