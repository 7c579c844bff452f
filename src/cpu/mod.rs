//! Host CPU load sampling for the status message.
//! Placeholder until the per-OS samplers land.

pub struct CpuSampler;

impl CpuSampler {
    pub fn new() -> CpuSampler {
        CpuSampler
    }

    pub fn sample(&mut self) -> Option<u8> {
        None
    }
}

impl Default for CpuSampler {
    fn default() -> Self {
        Self::new()
    }
}
