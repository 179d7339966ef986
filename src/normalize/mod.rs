//! Normalization: the one `Event` schema every vendor maps into (DESIGN §3), its vocabularies
//! (the payload family `Vendor` among them), its OCSF encoding (`ocsf`), and the helpers every
//! vendor decoder shares (stable ids, time formatting).

pub mod event;
pub mod ocsf;
pub(crate) mod scan;
pub mod severity;
pub mod time;
pub mod vendor;
pub mod write;

pub use event::{
    Disposition, Event, EventId, Finding, Kind, Network, Ocsf, Resource, Status, UNRECOGNIZED,
};
pub use severity::Severity;
pub use time::Timestamp;
pub use vendor::Vendor;
