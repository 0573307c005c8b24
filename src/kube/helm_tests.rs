//! The stock Promtail Helm chart config against fixture pods (see the helper notes).
