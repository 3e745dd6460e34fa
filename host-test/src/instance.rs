//! [`ReusedInstance`]: one component instance for many requests, the way `wasmtime serve
//! --max-instance-reuse-count N` runs a WASI 0.2 component (wasmtime-wasi-http's
//! `handler::ProxyHandler`): requests one at a time, the same store and linear memory
//! throughout, a new instance after `N` requests, and an instance that trapped or failed to
//! answer dropped rather than used again.

use crate::error::HarnessError;
use crate::harness::{Harness, Live};
use crate::request::TestRequest;
use crate::response::HarnessResponse;

pub struct ReusedInstance<'h> {
    harness: &'h Harness,
    live: Option<Live>,
    max_reuse: usize,
    instances: usize,
}

impl<'h> ReusedInstance<'h> {
    pub(crate) fn new(harness: &'h Harness, max_reuse: usize) -> Self {
        assert!(max_reuse >= 1, "an instance serves at least one request");
        ReusedInstance { harness, live: None, max_reuse, instances: 0 }
    }

    /// Sends one request to the live instance, instantiating first when there is none (the
    /// first request, after `max_reuse` requests, or after a broken call).
    pub async fn handle(&mut self, request: TestRequest) -> Result<HarnessResponse, HarnessError> {
        if self.live.as_ref().is_none_or(|live| live.broken || live.served >= self.max_reuse) {
            self.live = None;
            self.live = Some(self.harness.instantiate().await?);
            self.instances += 1;
        }
        let live = self.live.as_mut().expect("instantiated above");
        self.harness.serve(live, request).await
    }

    /// Instances created so far.
    pub fn instances(&self) -> usize {
        self.instances
    }

    /// Changes what the live instance's Spin variables provider answers from now on (Spin host
    /// mode): a provider value can change under a running instance.
    pub fn spin_variable(&mut self, name: &str, value: &str) {
        if let Some(live) = self.live.as_mut() {
            live.store.data_mut().spin.as_mut().expect("only in Spin host mode (Harness::spin)").provide(name, value);
        }
    }
}
