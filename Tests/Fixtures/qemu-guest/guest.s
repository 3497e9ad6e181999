# A tiny multiboot (v1) guest for QEMU: it fills memory with non-zero pages, says "filled" on
# COM1, then dirties pages at a given rate, so that a real QEMU migration has real work to do:
# the benchmark against QEMU (Benchmarks/qemu.sh) and tests that drive a QEMU pair over QMP.
# Command line (QEMU -append): fill=SIZE rate=PAGES_PER_SECOND; see README.md.
#
# Every page it writes holds its page frame number in the first word and the number of that
# write (a global count, 1-based) in the second: all pages non-zero and all different, so
# QEMU's zero-page detection has nothing to skip and a test can tell which write it sees.

    .set MB_MAGIC, 0x1BADB002
    .set MB_FLAGS, 0x00000002          # ask the loader for mem_lower/mem_upper
    .set MB_BOOTED, 0x2BADB002         # what a multiboot loader leaves in eax

    .set COM1, 0x3f8
    # Above the kernel (at 1 MiB) and the multiboot info and command line, which QEMU puts
    # right after the kernel's image.
    .set FILL_START, 0x200000
    .set PAGE, 4096

    .set PIT_HZ, 1193182
    .set CAL_TICKS, 59659              # 50.0 ms of PIT channel 2 to measure the TSC against
    .set CAL_ROUNDS, 5
    .set TICK_DIV, 1193                # PIT channel 0 at 1000.15 Hz: the writer's wake-up

    .section .multiboot, "a"
    .align 4
    .long MB_MAGIC, MB_FLAGS, -(MB_MAGIC + MB_FLAGS)

    .text
    .code32
    .globl _start
_start:
    cli
    mov $stack_top, %esp
    mov %eax, %ecx                     # the loader's magic; serial_init clobbers eax
    call serial_init
    cmp $MB_BOOTED, %ecx
    jne not_multiboot
    mov %ebx, mbi
    # The loader's GDT may be anywhere (the spec says so); an interrupt reloads CS from the
    # IDT's selector, so the writer's timer needs a GDT of our own.
    lgdt gdt_desc
    ljmp $0x08, $1f
1:  mov $0x10, %ax
    mov %ax, %ds
    mov %ax, %es
    mov %ax, %fs
    mov %ax, %gs
    mov %ax, %ss

    call read_multiboot_info
    mov $s_banner, %esi
    call puts
    mov fill_pages, %eax
    call putdec
    mov $s_rate, %esi
    call puts
    mov rate, %eax
    call putdec
    mov $s_pps, %esi
    call puts

    # Timer and calibration come before the fill, so that the writer runs from "filled" on.
    cmpl $0, rate
    je 2f
    cmpl $0, fill_pages
    je 2f
    call calibrate_tsc
    call setup_timer
    mov $s_tsc, %esi
    call puts
    mov tsc16_hz, %eax
    call putdec
    mov $s_hz, %esi
    call puts

2:  call fill
    mov $s_filled, %esi
    call puts
    cmpl $0, rate
    je idle
    cmpl $0, fill_pages
    jne dirty

# Interrupts are off, so a halted CPU stays halted: QEMU's vCPU thread sleeps for good.
idle:
    hlt
    jmp idle

not_multiboot:
    mov $s_not_mb, %esi
    call puts
    jmp idle

# Reads mem_upper (KiB above 1 MiB) and the command line. fill= is clamped to the memory
# above FILL_START: writing past the end of RAM would go nowhere, silently.
read_multiboot_info:
    mov mbi, %ebx
    xor %eax, %eax
    testl $1, (%ebx)                   # flags bit 0: mem_lower/mem_upper are valid
    jz 1f
    mov 8(%ebx), %eax
    add $1024, %eax                    # KiB from address 0
    shr $2, %eax                       # pages
    sub $(FILL_START / PAGE), %eax
    jae 1f
    xor %eax, %eax
1:  mov %eax, avail_pages
    testl $4, (%ebx)                   # flags bit 2: cmdline is valid
    jz 2f
    mov 16(%ebx), %esi
    call parse_cmdline
2:  mov avail_pages, %eax
    cmp %eax, fill_pages
    jbe 3f
    mov %eax, fill_pages
    mov $s_clamped, %esi
    call puts
3:  ret

# QEMU passes "KERNEL-PATH APPEND-TEXT": look at every space-separated word.
parse_cmdline:
    movb (%esi), %al
    test %al, %al
    jz 9f
    cmp $' ', %al
    jne 1f
    inc %esi
    jmp parse_cmdline
1:  mov $s_fill_key, %edi
    call match_prefix
    jnz 2f
    call parse_size_pages
    mov %eax, fill_pages
    jmp 3f
2:  mov $s_rate_key, %edi
    call match_prefix
    jnz 3f
    call parse_uint
    mov %eax, rate
3:  movb (%esi), %al                   # on to the next word
    test %al, %al
    jz 9f
    cmp $' ', %al
    je parse_cmdline
    inc %esi
    jmp 3b
9:  ret

# ZF set and esi past the prefix if the word at esi starts with the string at edi.
match_prefix:
    push %esi
1:  movb (%edi), %al
    test %al, %al
    jz 2f
    cmpb (%esi), %al
    jne 3f
    inc %esi
    inc %edi
    jmp 1b
2:  add $4, %esp
    xor %eax, %eax
    ret
3:  pop %esi
    or $1, %eax                        # clears ZF: no match
    ret

# Decimal digits at esi into eax; esi ends on the first non-digit.
parse_uint:
    xor %eax, %eax
1:  movzbl (%esi), %ecx
    sub $'0', %ecx
    cmp $9, %ecx
    ja 2f
    imul $10, %eax, %eax
    add %ecx, %eax
    inc %esi
    jmp 1b
2:  ret

# A size with an optional K, M or G (binary) into pages. Counting pages, not bytes, keeps
# sizes of 4 GiB and more in 32 bits.
parse_size_pages:
    call parse_uint
    movzbl (%esi), %ecx
    or $0x20, %cl                      # lower case
    cmp $'k', %cl
    jne 1f
    shr $2, %eax
    ret
1:  cmp $'m', %cl
    jne 2f
    shl $8, %eax
    ret
2:  cmp $'g', %cl
    jne 3f
    shl $18, %eax
    ret
3:  shr $12, %eax
    ret

fill:
    mov fill_pages, %ecx
    jecxz 2f
    mov $FILL_START, %edi
    mov $(FILL_START / PAGE), %edx
1:  mov %edx, (%edi)
    incl writes
    mov writes, %eax
    mov %eax, 4(%edi)
    add $PAGE, %edi
    inc %edx
    loop 1b
2:  ret

# TSC ticks/16 per second, measured against PIT channel 2 (port 0x61 bit 5 shows its
# output); /16 keeps the rate in 32 bits for TSCs up to 68 GHz. Under TCG the TSC is the
# host's, which is why it is measured rather than assumed. The shortest of five 50 ms rounds
# counts: a round in which the host preempted QEMU's vCPU thread sees the PIT's end late and
# came out up to 5% long on a loaded 2-core machine.
calibrate_tsc:
    mov $-1, %edi
    mov $CAL_ROUNDS, %esi
1:  call pit2_round
    cmp %edi, %eax
    jae 2f
    mov %eax, %edi
2:  dec %esi
    jnz 1b
    mov %edi, %eax
    mov $PIT_HZ, %ecx
    mul %ecx
    mov $CAL_TICKS, %ecx
    div %ecx
    mov %eax, tsc16_hz
    xor %edx, %edx                     # at most 100 ms of writes are owed after a stall
    mov $10, %ecx
    div %ecx
    mov %eax, max_owed16
    ret

# TSC ticks/16 while PIT channel 2 counts CAL_TICKS down, into eax.
pit2_round:
    inb $0x61, %al
    and $0xfc, %al                     # speaker off
    or $0x01, %al                      # gate on before the count is written: QEMU counts from
    outb %al, $0x61                    # the write in mode 0, hardware from the gate
    mov $0xb0, %al                     # channel 2, low then high byte, mode 0
    outb %al, $0x43
    mov $(CAL_TICKS & 0xff), %al
    outb %al, $0x42
    mov $(CAL_TICKS >> 8), %al
    outb %al, $0x42
    rdtsc
    mov %eax, %ebx
    mov %edx, %ebp
1:  inb $0x61, %al
    test $0x20, %al
    jz 1b
    rdtsc
    sub %ebx, %eax
    sbb %ebp, %edx
    shrd $4, %edx, %eax
    ret

# PIT channel 0 wakes the writer 1000 times a second through the 8259 PIC. The count of
# pages owed comes from the TSC, not from ticks, so a late or lost tick costs no writes.
setup_timer:
    mov $idt, %edi
    xor %ecx, %ecx
1:  lea fault_stubs(,%ecx,8), %eax    # exception n: the stub that says n
    cmp $32, %ecx
    jb 2f
    mov $tick, %eax
2:  mov %ax, (%edi)
    movw $0x08, 2(%edi)
    movw $0x8e00, 4(%edi)              # present, ring 0, 32-bit interrupt gate
    shr $16, %eax
    mov %ax, 6(%edi)
    add $8, %edi
    inc %ecx
    cmp $48, %ecx
    jb 1b
    lidt idt_desc
    # The PICs' vectors move to 0x20-0x2f, off the CPU's exceptions; only IRQ 0 is let in.
    mov $0x11, %al
    outb %al, $0x20
    outb %al, $0xa0
    mov $0x20, %al
    outb %al, $0x21
    mov $0x28, %al
    outb %al, $0xa1
    mov $0x04, %al
    outb %al, $0x21
    mov $0x02, %al
    outb %al, $0xa1
    mov $0x01, %al
    outb %al, $0x21
    outb %al, $0xa1
    mov $0xfe, %al
    outb %al, $0x21
    mov $0xff, %al
    outb %al, $0xa1
    mov $0x34, %al                     # channel 0, low then high byte, mode 2 (periodic)
    outb %al, $0x43
    mov $(TICK_DIV & 0xff), %al
    outb %al, $0x40
    mov $(TICK_DIV >> 8), %al
    outb %al, $0x40
    ret

# The tick only wakes the writer from hlt; the writer does the work with interrupts off.
tick:
    push %eax
    mov $0x20, %al
    outb %al, $0x20                    # end of interrupt
    pop %eax
    iret

# One 8-byte stub per exception vector, so that the message says which one it was (after a
# migration, a #DE from the writer's divide would mean a page came back wrong).
    .balign 8
fault_stubs:
    .irp n, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31
    .balign 8
    push $\n
    jmp fault
    .endr

fault:
    mov $s_fault, %esi
    call puts
    pop %eax                           # the vector its stub pushed
    call putdec
    mov $s_halted, %esi
    call puts
    cli
    jmp idle

# Owed pages = elapsed TSC × rate / TSC rate, the remainder carried to the next wake-up, so
# the rate holds over any interval however the wake-ups fall. A stall (the guest stopped for
# a migration's downtime, a TSC that moved backwards) owes at most 100 ms of writes.
dirty:
    mov rate, %eax
    mov %eax, countdown
    rdtsc
    shrd $4, %edx, %eax
    shr $4, %edx
    mov %eax, last16
    mov %edx, last16 + 4
1:  sti                                # sti; hlt: a tick between the two still wakes hlt
    hlt
    cli
    rdtsc
    shrd $4, %edx, %eax
    shr $4, %edx
    mov %eax, %ebx
    mov %edx, %ecx
    sub last16, %eax
    sbb last16 + 4, %edx
    mov %ebx, last16
    mov %ecx, last16 + 4
    mov max_owed16, %ecx
    test %edx, %edx
    jnz 2f
    cmp %ecx, %eax
    jbe 3f
2:  mov %ecx, %eax
3:  mull rate
    add owed_frac, %eax
    adc $0, %edx
    divl tsc16_hz
    mov %edx, owed_frac
    mov %eax, %ecx                     # the loader's magic; serial_init clobbers eax
    jecxz 1b
4:  push %ecx
    call write_page
    pop %ecx
    loop 4b
    jmp 1b

# One write to a page chosen uniformly (xorshift32, scaled by a multiply: no modulo bias to
# speak of); every `rate` writes, about once a second, "dirtied N" on COM1.
write_page:
    mov rng, %eax
    mov %eax, %edx
    shl $13, %edx
    xor %edx, %eax
    mov %eax, %edx
    shr $17, %edx
    xor %edx, %eax
    mov %eax, %edx
    shl $5, %edx
    xor %edx, %eax
    mov %eax, rng
    mull fill_pages                    # edx = rng × pages / 2^32
    lea (FILL_START / PAGE)(%edx), %eax
    shl $12, %edx
    add $FILL_START, %edx
    mov %eax, (%edx)
    incl writes
    mov writes, %eax
    mov %eax, 4(%edx)
    decl countdown
    jnz 1f
    mov rate, %eax
    mov %eax, countdown
    mov $s_dirtied, %esi
    call puts
    mov writes, %eax
    sub fill_pages, %eax
    call putdec
    mov $s_nl, %esi
    call puts
1:  ret

# 8N1, no interrupts; QEMU ignores the baud rate.
serial_init:
    mov $COM1 + 1, %dx
    xor %al, %al
    outb %al, %dx
    mov $COM1 + 3, %dx
    mov $0x03, %al
    outb %al, %dx
    ret

putc:                                  # al; keeps every other register
    push %edx
    push %eax
    mov $COM1 + 5, %dx
1:  inb %dx, %al
    test $0x20, %al                    # transmitter ready
    jz 1b
    pop %eax
    mov $COM1, %dx
    outb %al, %dx
    pop %edx
    ret

puts:                                  # NUL-terminated string at esi
    movb (%esi), %al
    test %al, %al
    jz 1f
    call putc
    inc %esi
    jmp puts
1:  ret

putdec:                                # eax in decimal
    push %ebx
    mov $10, %ebx
    xor %ecx, %ecx
1:  xor %edx, %edx
    div %ebx
    push %edx
    inc %ecx
    test %eax, %eax
    jnz 1b
2:  pop %eax
    add $'0', %al
    call putc
    loop 2b
    pop %ebx
    ret

    .section .rodata
s_banner:   .asciz "qemu-guest: fill="
s_rate:     .asciz " pages, rate="
s_pps:      .asciz " pages/s\n"
s_tsc:      .asciz "qemu-guest: tsc/16="
s_hz:       .asciz " Hz\n"
s_filled:   .asciz "filled\n"
s_dirtied:  .asciz "dirtied "
s_nl:       .asciz "\n"
s_clamped:  .asciz "qemu-guest: fill= clamped to the memory above 2 MiB\n"
s_not_mb:   .asciz "qemu-guest: not started by a multiboot loader\n"
s_fault:    .asciz "qemu-guest: CPU exception "
s_halted:   .asciz ", halted\n"
s_fill_key: .asciz "fill="
s_rate_key: .asciz "rate="

    .data
    .align 8
gdt:
    .quad 0
    .quad 0x00cf9a000000ffff           # 0x08: code, flat 4 GiB, 32-bit
    .quad 0x00cf92000000ffff           # 0x10: data, flat 4 GiB
gdt_end:
gdt_desc:
    .word gdt_end - gdt - 1
    .long gdt
idt_desc:
    .word 48 * 8 - 1
    .long idt
rng:        .long 0x2545f491           # xorshift32 needs a non-zero seed

    .bss
    .align 8
last16:     .quad 0
idt:        .skip 48 * 8
mbi:        .long 0
avail_pages: .long 0
fill_pages: .long 0
rate:       .long 0
tsc16_hz:   .long 0
max_owed16: .long 0
owed_frac:  .long 0
writes:     .long 0
countdown:  .long 0
    .align 16
    .skip 16384
stack_top:
