//! tailtrace's native `kubernetes_pods` form (being written).
