"""Read (and append to) an OVMF UEFI variable store file (*_VARS.fd).

Layout, as edk2 writes it (MdeModulePkg VariableFormat.h), all little endian:
  firmware volume header   (signature "_FVH" at 40, HeaderLength at 48)
  variable store header    GUID(16) Size(4) Format(1)=0x5A State(1)=0xFE Reserved(6)
  variables, each 4-byte aligned, until a StartId that is not 0x55AA:
    authenticated header (60 bytes): StartId(2)=0x55AA State(1) Reserved(1)
      Attributes(4) MonotonicCount(8) TimeStamp(16) PubKeyIndex(4)
      NameSize(4) DataSize(4) VendorGuid(16)
    (the older non-authenticated format has a 32-byte header without
    MonotonicCount, TimeStamp and PubKeyIndex)
    then the UTF-16LE name with its NUL, then the data (no padding between
    name and data on x86)
  free space: 0xFF up to the end of the store.

A variable's State only ever loses bits (flash semantics):
  0xFF header being written           -> not a variable, and as edk2 does, its
                                         NameSize/DataSize count as 0
  0x7F header written, data not yet   -> not a variable
  0x3F added                          -> live
  0x3E added, being replaced          -> live only while no 0x3F copy exists
  0x3D, 0x3C deleted                  -> gone
edk2 replaces a variable by marking the old copy 0x3E, appending the new one
(header with 0xFF, 0x7F, name and data, 0x3F) and finally marking the old one 0x3C; a file captured at any
step of that still yields exactly one live copy with the rules above.
"""

import struct
import uuid
from pathlib import Path

FVH_SIGNATURE = b"_FVH"
AUTH_STORE_GUID = uuid.UUID("aaf32c78-947b-439a-a180-2e144ec37792")
PLAIN_STORE_GUID = uuid.UUID("ddcf3616-3275-4164-98b6-fe85707ffe7d")
STORE_HEADER_SIZE = 28
START_ID = 0x55AA

# State values as edk2 names them; deleting is `State &= VAR_DELETED`.
VAR_HEADER_VALID_ONLY = 0x7F
VAR_ADDED = 0x3F
VAR_IN_DELETED_TRANSITION = VAR_ADDED & 0xFE      # 0x3E
VAR_DELETED = 0xFD                                # AND mask: 0x3F -> 0x3D, 0x3E -> 0x3C

# attributes
EFI_VARIABLE_NON_VOLATILE = 0x1
EFI_VARIABLE_BOOTSERVICE_ACCESS = 0x2
EFI_VARIABLE_RUNTIME_ACCESS = 0x4
EFI_VARIABLE_TIME_BASED_AUTHENTICATED_WRITE_ACCESS = 0x20

AUTH_HEADER = struct.Struct("<HBBIQ16sIII16s")     # 60 bytes
PLAIN_HEADER = struct.Struct("<HBBIII16s")         # 32 bytes


def _align4(n):
    return (n + 3) & ~3


class VarStore:
    """The parsed store: where it is in the file and every variable record."""

    def __init__(self, image):
        self.image = image
        if image[40:44] != FVH_SIGNATURE:
            raise ValueError("not a firmware volume (no _FVH signature)")
        (hlen,) = struct.unpack_from("<H", image, 48)
        guid = uuid.UUID(bytes_le=bytes(image[hlen:hlen + 16]))
        if guid == AUTH_STORE_GUID:
            self.header = AUTH_HEADER
        elif guid == PLAIN_STORE_GUID:
            self.header = PLAIN_HEADER
        else:
            raise ValueError(f"unknown variable store GUID {guid}")
        size, fmt, state = struct.unpack_from("<IBB", image, hlen + 16)
        if fmt != 0x5A or state != 0xFE:
            raise ValueError(f"variable store not formatted/healthy ({fmt:#x}, {state:#x})")
        self.start = _align4(hlen + STORE_HEADER_SIZE)
        self.end = hlen + size
        self.records = []    # (offset, state, attributes, name, guid_str, data)
        off = self.start
        while off + self.header.size <= self.end:
            fields = self.header.unpack_from(image, off)
            if fields[0] != START_ID:
                break
            state, attrs = fields[1], fields[3]
            name_size, data_size, guid_b = fields[-3], fields[-2], fields[-1]
            if state == 0xFF or 0xFFFFFFFF in (attrs, name_size, data_size):
                # edk2 writes a header with State 0xFF first, then sets 0x7F,
                # then writes name and data. It walks such a header as one
                # without name and data (NameSizeOfVariable() returns 0), so
                # the next variable starts right after it: do the same.
                name_size = data_size = 0
            name_off = off + self.header.size
            data_off = name_off + name_size
            if data_off + data_size > self.end:
                if state not in (VAR_ADDED, VAR_IN_DELETED_TRANSITION):
                    # A header caught while being written (the firmware was
                    # stopped mid-write): the variables end here.
                    break
                raise ValueError(f"variable at {off:#x} runs past the store end")
            name = bytes(image[name_off:data_off]).decode("utf-16-le").rstrip("\0")
            data = bytes(image[data_off:data_off + data_size])
            self.records.append((off, state, attrs, name,
                                 str(uuid.UUID(bytes_le=bytes(guid_b))), data))
            off = _align4(data_off + data_size)
        self.free = off     # first byte after the last variable

    def live(self):
        """{(name, guid): record} with the 0x3F/0x3E rules of the module doc."""
        added, in_transition = {}, {}
        for rec in self.records:
            key = (rec[3], rec[4])
            if rec[1] == VAR_ADDED:
                added[key] = rec      # the last added copy wins
            elif rec[1] == VAR_IN_DELETED_TRANSITION:
                in_transition[key] = rec
        return {**in_transition, **added}


def read_vars(path):
    """{(name, guid_str): (attributes, data)} of the live variables."""
    store = VarStore(Path(path).read_bytes())
    return {k: (r[2], r[5]) for k, r in store.live().items()}


def get_var(path, name, guid):
    """(attributes, data) of one live variable, or None."""
    return read_vars(path).get((name, str(uuid.UUID(str(guid)))))


def add_var(path, name, guid, data, attrs=EFI_VARIABLE_NON_VOLATILE
            | EFI_VARIABLE_BOOTSERVICE_ACCESS | EFI_VARIABLE_RUNTIME_ACCESS):
    """Append a non-authenticated variable to an OFFLINE store, the way the
    firmware itself does: the new record goes into the free (0xFF) space
    with state VAR_ADDED, and any live copy of the same variable is marked
    deleted (a state byte only loses bits). The VM must be off.
    Raises if the variable needs authentication or there is no room (the
    firmware would reclaim space; this does not)."""
    if attrs & EFI_VARIABLE_TIME_BASED_AUTHENTICATED_WRITE_ACCESS:
        raise ValueError("authenticated variables are not supported")
    guid_b = uuid.UUID(str(guid)).bytes_le
    path = Path(path)
    image = bytearray(path.read_bytes())
    store = VarStore(image)
    name_b = (name + "\0").encode("utf-16-le")
    if store.header is AUTH_HEADER:
        header = AUTH_HEADER.pack(START_ID, VAR_ADDED, 0, attrs, 0, bytes(16), 0,
                                  len(name_b), len(data), guid_b)
    else:
        header = PLAIN_HEADER.pack(START_ID, VAR_ADDED, 0, attrs,
                                   len(name_b), len(data), guid_b)
    record = header + name_b + bytes(data)
    off = store.free
    if off + len(record) > store.end:
        raise OSError(f"{path}: no room for {len(record)} more bytes in the variable store")
    if any(b != 0xFF for b in image[off:off + len(record)]):
        raise ValueError(f"{path}: space after the last variable is not free (0xFF)")
    for rec in store.live().values():
        if rec[3] == name and rec[4] == str(uuid.UUID(str(guid))):
            image[rec[0] + 2] &= VAR_DELETED
    image[off:off + len(record)] = record
    # Rewrite in place (not a new file) so owner and mode stay libvirt's.
    with open(path, "r+b") as f:
        f.write(image)
