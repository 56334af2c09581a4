//! Runs a seccomp program (classic BPF) on a system call, in userspace:
//! the violations report answers each denied call with the errno the
//! plan's own program gives it, so the report never changes what the
//! workload sees. The kernel verified the program when it was installed;
//! this interpreter still checks every access, and anything it cannot
//! run is a kill verdict (never an allow).

use protocol::SockFilter;

/// The instructions the programs nucleus writes itself are made of
/// (`BPF_LD|BPF_W|BPF_ABS`, `BPF_JMP|BPF_JEQ|BPF_K`, `BPF_RET|BPF_K`).
pub const LD_W_ABS: u16 = 0x20;
pub const JEQ_K: u16 = 0x15;
pub const RET_K: u16 = 0x06;
/// `seccomp_data.arch` of a native (x86_64) system call.
pub const AUDIT_ARCH_X86_64: u32 = 0xc000_003e;

pub fn insn(code: u16, jt: u8, jf: u8, k: u32) -> SockFilter {
    SockFilter { code, jt, jf, k }
}

/// What `seccomp_data` holds for one call (`struct seccomp_data`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Call {
    pub nr: i32,
    pub arch: u32,
    pub instruction_pointer: u64,
    pub args: [u64; 6],
}

impl Call {
    /// The 32-bit word at byte `offset` of `struct seccomp_data`, as a
    /// `BPF_LD|BPF_W|BPF_ABS` reads it (native byte order: little-endian
    /// x86_64, so a u64's low half comes first).
    fn word(&self, offset: u32) -> Option<u32> {
        let half = |v: u64, high: bool| if high { (v >> 32) as u32 } else { v as u32 };
        match offset {
            0 => Some(self.nr as u32),
            4 => Some(self.arch),
            8 | 12 => Some(half(self.instruction_pointer, offset == 12)),
            16..=63 if offset.is_multiple_of(4) => {
                let i = (offset as usize - 16) / 8;
                Some(half(self.args[i], offset % 8 == 4))
            }
            _ => None,
        }
    }
}

/// `sizeof(struct seccomp_data)`, what `BPF_LEN` loads.
const DATA_LEN: u32 = 64;
const KILL: u32 = libc::SECCOMP_RET_KILL_PROCESS;

/// The program's return value for `call`.
pub fn run(program: &[SockFilter], call: &Call) -> u32 {
    let (mut a, mut x) = (0u32, 0u32);
    let mut mem = [0u32; 16];
    let mut pc = 0usize;
    loop {
        let Some(insn) = program.get(pc) else {
            return KILL;
        };
        pc += 1;
        let k = insn.k;
        let src = if insn.code & 0x08 != 0 { x } else { k };
        match insn.code {
            // BPF_LD|BPF_W|BPF_ABS, BPF_LD|BPF_W|BPF_LEN, BPF_LDX|BPF_W|BPF_LEN
            LD_W_ABS => match call.word(k) {
                Some(w) => a = w,
                None => return KILL,
            },
            0x80 => a = DATA_LEN,
            0x81 => x = DATA_LEN,
            // BPF_LD|BPF_IMM, BPF_LDX|BPF_IMM
            0x00 => a = k,
            0x01 => x = k,
            // BPF_LD|BPF_MEM, BPF_LDX|BPF_MEM, BPF_ST, BPF_STX
            0x60 | 0x61 | 0x02 | 0x03 => {
                let Some(slot) = mem.get_mut(k as usize) else {
                    return KILL;
                };
                match insn.code {
                    0x60 => a = *slot,
                    0x61 => x = *slot,
                    0x02 => *slot = a,
                    _ => *slot = x,
                }
            }
            // BPF_ALU with BPF_K or BPF_X
            code if code & 0x07 == 0x04 => {
                a = match code & 0xf0 {
                    0x00 => a.wrapping_add(src),
                    0x10 => a.wrapping_sub(src),
                    0x20 => a.wrapping_mul(src),
                    0x30 | 0x90 if src == 0 => return KILL,
                    0x30 => a / src,
                    0x90 => a % src,
                    0x40 => a | src,
                    0x50 => a & src,
                    0x60 => a.checked_shl(src).unwrap_or(0),
                    0x70 => a.checked_shr(src).unwrap_or(0),
                    0x80 => a.wrapping_neg(),
                    0xa0 => a ^ src,
                    _ => return KILL,
                }
            }
            // BPF_JMP|BPF_JA: only forward, so every program ends.
            0x05 => pc = pc.saturating_add(k as usize),
            // BPF_JMP conditionals with BPF_K or BPF_X
            code if code & 0x07 == 0x05 => {
                let taken = match code & 0xf0 {
                    0x10 => a == src,
                    0x20 => a > src,
                    0x30 => a >= src,
                    0x40 => a & src != 0,
                    _ => return KILL,
                };
                pc += usize::from(if taken { insn.jt } else { insn.jf });
            }
            // BPF_RET|BPF_K, BPF_RET|BPF_A
            RET_K => return k,
            0x16 => return a,
            // BPF_MISC|BPF_TAX, BPF_MISC|BPF_TXA
            0x07 => x = a,
            0x87 => a = x,
            _ => return KILL,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const JGE_K: u16 = 0x35;
    const JSET_K: u16 = 0x45;

    fn call(nr: i32, args: [u64; 6]) -> Call {
        Call {
            nr,
            arch: AUDIT_ARCH_X86_64,
            instruction_pointer: 0x7fff_0000_1234,
            args,
        }
    }

    #[test]
    fn words_are_the_kernels_layout() {
        let c = call(
            59,
            [0x1111_2222_3333_4444, 0, 0, 0, 0, 0x5555_6666_7777_8888],
        );
        assert_eq!(c.word(0), Some(59));
        assert_eq!(c.word(4), Some(AUDIT_ARCH_X86_64));
        assert_eq!(c.word(8), Some(0x0000_1234));
        assert_eq!(c.word(12), Some(0x7fff));
        assert_eq!(c.word(16), Some(0x3333_4444));
        assert_eq!(c.word(20), Some(0x1111_2222));
        assert_eq!(c.word(56), Some(0x7777_8888));
        assert_eq!(c.word(60), Some(0x5555_6666));
        assert_eq!(c.word(64), None);
        assert_eq!(c.word(18), None, "unaligned");
    }

    #[test]
    fn a_filter_on_an_argument_decides_like_the_kernel() {
        // personality(arg0 == 0xffffffff) allowed, any other personality
        // EPERM, everything else ENOSYS: libseccomp's shape.
        let errno = |e: u32| libc::SECCOMP_RET_ERRNO | e;
        let program = [
            insn(LD_W_ABS, 0, 0, 0),
            insn(JEQ_K, 0, 4, 135),
            insn(LD_W_ABS, 0, 0, 16),
            insn(JEQ_K, 0, 1, 0xffff_ffff),
            insn(RET_K, 0, 0, libc::SECCOMP_RET_ALLOW),
            insn(RET_K, 0, 0, errno(1)),
        ];
        assert_eq!(
            run(&program, &call(135, [0xffff_ffff, 0, 0, 0, 0, 0])),
            0x7fff_0000
        );
        assert_eq!(run(&program, &call(135, [8, 0, 0, 0, 0, 0])), errno(1));
        // A jump off the end of the program: kill.
        assert_eq!(run(&program, &call(0, [0; 6])), KILL);
        let program = [&program[..], &[insn(RET_K, 0, 0, errno(38))]].concat();
        assert_eq!(run(&program, &call(0, [0; 6])), errno(38));
    }

    #[test]
    fn alu_jumps_and_scratch_memory() {
        let program = [
            insn(LD_W_ABS, 0, 0, 16),
            insn(0x54, 0, 0, 0xff),   // A &= 0xff
            insn(0x02, 0, 0, 3),      // mem[3] = A
            insn(0x00, 0, 0, 0),      // A = 0
            insn(0x60, 0, 0, 3),      // A = mem[3]
            insn(JSET_K, 0, 2, 0x80), // high bit of the low byte?
            insn(0x07, 0, 0, 0),      // X = A
            insn(0x16, 0, 0, 0),      // return A
            insn(JGE_K, 1, 0, 0x10),
            insn(0x05, 0, 0, 1), // ja +1
            insn(RET_K, 0, 0, 7),
            insn(RET_K, 0, 0, 9),
        ];
        assert_eq!(
            run(&program, &call(0, [0x1_0000_0181, 0, 0, 0, 0, 0])),
            0x81
        );
        assert_eq!(run(&program, &call(0, [0x20, 0, 0, 0, 0, 0])), 7);
        assert_eq!(run(&program, &call(0, [0x01, 0, 0, 0, 0, 0])), 9);
    }

    #[test]
    fn what_it_cannot_run_is_a_kill() {
        for bad in [
            insn(LD_W_ABS, 0, 0, 64),  // past seccomp_data
            insn(0x60, 0, 0, 16),      // past the scratch memory
            insn(0x34, 0, 0, 0),       // A /= 0
            insn(0x05, 0, 0, 1 << 31), // a jump off the end
            insn(0xff, 0, 0, 0),       // no such instruction
        ] {
            assert_eq!(
                run(&[bad, insn(RET_K, 0, 0, 0x7fff_0000)], &call(0, [0; 6])),
                KILL
            );
        }
        assert_eq!(run(&[], &call(0, [0; 6])), KILL);
    }
}
