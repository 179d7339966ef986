//! `Vendor`: the payload family an event came from, as the Event schema names it (`vendor`,
//! `product`) and the config spells it (`vendor = "..."`, a sink filter's `vendors`). The
//! decoders behind each family, and their per-vendor defaults, are in `vendors/`.

use serde::Serialize;

/// A payload family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Vendor {
    Generic,
    PrismaCloud,
    Wallarm,
    Coralogix,
    Immuta,
}

/// Config name -> vendor.
const REGISTRY: &[(&str, Vendor)] = &[
    ("generic", Vendor::Generic),
    ("prisma_cloud", Vendor::PrismaCloud),
    ("wallarm", Vendor::Wallarm),
    ("coralogix", Vendor::Coralogix),
    ("immuta", Vendor::Immuta),
];

impl Vendor {
    /// The names accepted as `vendor = "..."` in a source.
    pub fn names() -> impl Iterator<Item = &'static str> {
        REGISTRY.iter().map(|&(n, _)| n)
    }

    pub fn from_name(name: &str) -> Option<Vendor> {
        REGISTRY.iter().find(|(n, _)| *n == name).map(|&(_, v)| v)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Vendor::Generic => "generic",
            Vendor::PrismaCloud => "prisma_cloud",
            Vendor::Wallarm => "wallarm",
            Vendor::Coralogix => "coralogix",
            Vendor::Immuta => "immuta",
        }
    }

    /// The Event's `product` field.
    pub fn product(self) -> &'static str {
        match self {
            Vendor::Generic => "generic",
            Vendor::PrismaCloud => "Prisma Cloud",
            Vendor::Wallarm => "Wallarm",
            Vendor::Coralogix => "Coralogix",
            Vendor::Immuta => "Immuta",
        }
    }
}
