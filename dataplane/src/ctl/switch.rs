//! `xgate bypass on|off PORT`: the per-port switch, written straight into the running
//! gateway's pinned `ports` map.
//!
//! `on`: new connections go to the bypass path; established kernel connections finish on the
//! kernel. `off`: `draining` first — new SYNs go to the kernel listener while user-space flows
//! and handshakes already answered with a cookie finish in user space — then, after the grace
//! period, `off`. No connection is reset by either (docs/steering.md, "What follows").

use std::time::Duration;

use crate::bpf::{PortState, SteeringMaps};

use super::{locate, CtlError, Located};

/// What a switch did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Switched {
    pub gateway: Located,
    pub port: u16,
    /// The state before, as read from `ports`.
    pub before: Option<PortState>,
    pub after: PortState,
}

/// Opens the gateway's maps and checks it serves `port` (sock_ops tagged its listener).
fn open_served(ifname: Option<&str>, port: u16) -> Result<(Located, SteeringMaps), CtlError> {
    let gw = locate(ifname)?;
    let maps = SteeringMaps::open_pinned(&gw.pin_dir)?;
    if maps.listener(port)?.is_none() {
        let served: Vec<String> = maps
            .listeners()?
            .iter()
            .map(|l| l.port.to_string())
            .collect();
        return Err(CtlError::PortNotServed {
            port,
            ifname: gw.ifname,
            served: if served.is_empty() {
                "none".into()
            } else {
                served.join(", ")
            },
        });
    }
    Ok((gw, maps))
}

/// Switches `port` to the bypass path.
pub fn bypass_on(ifname: Option<&str>, port: u16) -> Result<Switched, CtlError> {
    let (gateway, maps) = open_served(ifname, port)?;
    let before = maps.port_state(port)?;
    maps.set_port_state(port, PortState::On)?;
    Ok(Switched {
        gateway,
        port,
        before,
        after: PortState::On,
    })
}

/// Switches `port` to the kernel path: `draining` for `drain`, then `off`. `on_draining` is
/// called once the port is draining (to tell the operator while they wait). If the port was
/// switched on again by someone else while draining, it is left on and `after` says so.
pub fn bypass_off(
    ifname: Option<&str>,
    port: u16,
    drain: Duration,
    on_draining: impl FnOnce(&Located),
) -> Result<Switched, CtlError> {
    let (gateway, maps) = open_served(ifname, port)?;
    let before = maps.port_state(port)?;
    if before != Some(PortState::Off) {
        maps.set_port_state(port, PortState::Draining)?;
        on_draining(&gateway);
        std::thread::sleep(drain);
    }
    // The gateway may have gone while we waited: its pins went with it.
    let after = match maps.port_state(port)? {
        Some(PortState::On) => PortState::On,
        _ => {
            maps.set_port_state(port, PortState::Off)?;
            PortState::Off
        }
    };
    Ok(Switched {
        gateway,
        port,
        before,
        after,
    })
}
