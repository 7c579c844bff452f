//! Host CPU load sampling for the status message.
