//! remoteproc firmware: resource table, writer, kernel-rule checker. Being written.
