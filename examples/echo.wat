;; An echo guest: reads from its connection, WASI fd 3, and writes every
;; byte back, until the peer closes its side (end of stream).
;;
;; The host hands the accepted connection to the instance as fd 3 (the
;; first descriptor after stdio when there are no preopened directories):
;; see examples/echo_server.rs, `shoal serve`, and shoal::bench::echo.
;;
;; Ends by returning from `_start` (exit code 0) at end of stream; on an
;; I/O error (a connection reset, say) it exits with the WASI errno as its
;; exit code. One page of memory: a 32 KiB buffer and two iovecs.
(module $echo
  (import "wasi_snapshot_preview1" "fd_read"
    (func $fd_read (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write"
    (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit"
    (func $proc_exit (param i32)))
  (memory (export "memory") 1 1)

  ;; Memory layout.
  (global $conn i32 (i32.const 3))         ;; the connection's fd
  (global $read_iov i32 (i32.const 0))     ;; iovec for fd_read: buf, len
  (global $nread i32 (i32.const 8))        ;; bytes read
  (global $write_iov i32 (i32.const 16))   ;; iovec for fd_write
  (global $nwritten i32 (i32.const 24))    ;; bytes written
  (global $buf i32 (i32.const 1024))
  (global $buf_len i32 (i32.const 32768))

  ;; Reads once into the buffer; returns the byte count (0 at end of
  ;; stream). Exits with the errno on an error.
  (func $read_some (result i32)
    (local $err i32)
    (i32.store (global.get $read_iov) (global.get $buf))
    (i32.store offset=4 (global.get $read_iov) (global.get $buf_len))
    (local.set $err
      (call $fd_read (global.get $conn) (global.get $read_iov) (i32.const 1)
                     (global.get $nread)))
    (if (local.get $err) (then (call $proc_exit (local.get $err))))
    (i32.load (global.get $nread)))

  ;; Writes the first $len bytes of the buffer, however many calls it
  ;; takes. Exits with the errno on an error.
  (func $write_all (param $len i32)
    (local $done i32) (local $err i32)
    (loop $more
      (i32.store (global.get $write_iov)
        (i32.add (global.get $buf) (local.get $done)))
      (i32.store offset=4 (global.get $write_iov)
        (i32.sub (local.get $len) (local.get $done)))
      (local.set $err
        (call $fd_write (global.get $conn) (global.get $write_iov) (i32.const 1)
                        (global.get $nwritten)))
      (if (local.get $err) (then (call $proc_exit (local.get $err))))
      (local.set $done
        (i32.add (local.get $done) (i32.load (global.get $nwritten))))
      (br_if $more (i32.lt_u (local.get $done) (local.get $len)))))

  (func $start (export "_start")
    (local $n i32)
    (loop $echo
      (local.set $n (call $read_some))
      (if (local.get $n)
        (then
          (call $write_all (local.get $n))
          (br $echo))))))
