//! Method comparison over a chunk stream: one backbone pass and one fast-layer pass per chunk,
//! shared by every gating method; run folders and the report.
