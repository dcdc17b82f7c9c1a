//! Control channels (QMP, guest agent), the serial console and its log, the display and the
//! pidfile.

use serde_json::json;

use super::chardev;
use super::common::{Argv, socket};
use super::types::BootError;
use crate::paths::RuntimePaths;
use limiquantix_vm::model::VmDefinition;

/// Emits QMP, QGA, serial, video, VNC and `-pidfile`.
pub(super) fn control(
    a: &mut Argv,
    def: &VmDefinition,
    paths: &RuntimePaths,
) -> Result<(), BootError> {
    let (qmp_path, qga_path) = (paths.qmp_socket(), paths.qga_socket());
    let qmp = socket("paths.qmp_socket", &qmp_path)?;
    a.opt(
        "-chardev",
        chardev::with_value("socket,id=qmp,path=", qmp, ",server=on,wait=off"),
    );
    a.opt("-mon", "chardev=qmp,mode=control");
    let qga = socket("paths.qga_socket", &qga_path)?;
    a.opt(
        "-chardev",
        chardev::with_value("socket,id=qga,path=", qga, ",server=on,wait=off"),
    );
    a.json(
        "-device",
        json!({ "driver": "virtio-serial-pci", "id": "vserial0" }),
    );
    a.json(
        "-device",
        json!({
            "driver": "virtserialport",
            "id": "qga-port",
            "bus": "vserial0.0",
            "chardev": "qga",
            "name": "org.qemu.guest_agent.0",
        }),
    );
    // The serial port: a socket an interactive console attaches to (one client at a time),
    // logging everything the guest prints to serial.log whether or not a client is attached.
    let serial_path = paths.serial_socket();
    let serial = socket("paths.serial_socket", &serial_path)?;
    let mut serial0 = chardev::with_value(
        "socket,id=serial0,path=",
        serial,
        ",server=on,wait=off,logfile=",
    );
    serial0.push(chardev::with_value(
        "",
        paths.serial_log().as_os_str(),
        ",logappend=on",
    ));
    a.opt("-chardev", serial0);
    a.json(
        "-device",
        json!({ "driver": "isa-serial", "id": "serial0-port", "chardev": "serial0" }),
    );

    // Display: a video device, no local window, VNC on the configured address.
    a.json(
        "-device",
        json!({ "driver": def.guest_os.video_device(), "id": "video0" }),
    );
    a.opt("-display", "none");
    if def.console.vnc {
        let con = &def.console;
        let mut vnc = match con.vnc_display {
            Some(d) => format!("{}:{d}", con.vnc_listen),
            None => format!("{}:0,to=99", con.vnc_listen),
        };
        if con.vnc_password.is_some() {
            vnc.push_str(",password=on");
        }
        a.opt("-vnc", vnc);
    }
    a.opt("-pidfile", paths.pidfile().into_os_string());
    Ok(())
}
