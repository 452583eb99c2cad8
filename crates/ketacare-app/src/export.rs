//! Research and interoperability exports.
