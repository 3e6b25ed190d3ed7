! The Fortran module `cairn` under mpiexec: round trips of real(8) arrays of rank 1 to 3, real(4),
! integer(4) and integer(8) arrays, replicated arrays and scalars, saved on one decomposition and
! loaded on another; an asynchronous save; the manager; and error codes with their messages.
! Exits with status 1 (on every rank) when any check failed on any rank.
program test_fortran
  use mpi
  use cairn
  use, intrinsic :: iso_c_binding, only: c_double, c_float, c_int32_t, c_int64_t, c_int
  use, intrinsic :: iso_fortran_env, only: error_unit
  implicit none

  interface
    function c_getpid() bind(c, name="getpid")
      import :: c_int
      integer(c_int) :: c_getpid
    end function c_getpid
  end interface

  integer, parameter :: nx = 5, ny = 4, nz = 7
  integer :: ierr, rank, nranks, provided, failures, total_failures
  character(len=512) :: dir
  type(cairn_checkpointer) :: ck

  failures = 0
  call MPI_Init_thread(MPI_THREAD_MULTIPLE, provided, ierr)
  call MPI_Comm_rank(MPI_COMM_WORLD, rank, ierr)
  call MPI_Comm_size(MPI_COMM_WORLD, nranks, ierr)
  call make_directory()

  call expect(len(cairn_version()) >= 5, "cairn_version() is '"//cairn_version()//"'")
  call cairn_checkpointer_create(MPI_COMM_WORLD, ck, ierr)
  call expect_ok(ierr, "cairn_checkpointer_create")

  call test_mpi_f08_communicator()
  call test_round_trip()
  call test_async()
  call test_manager()
  call test_errors()

  call cairn_checkpointer_free(ck, ierr)
  call expect_ok(ierr, "cairn_checkpointer_free")

  call MPI_Allreduce(failures, total_failures, 1, MPI_INTEGER, MPI_SUM, MPI_COMM_WORLD, ierr)
  if (rank == 0) then
    if (total_failures == 0) then
      call execute_command_line("rm -rf '"//trim(dir)//"'")
      write (*, '(a,i0,a)') "PASS: Fortran module on ", nranks, " ranks"
    else
      write (*, '(a,i0,a,i0,a)') "FAIL: ", total_failures, " failed checks on ", nranks, " ranks in "//trim(dir)
    end if
  end if
  call MPI_Finalize(ierr)
  if (total_failures /= 0) stop 1

contains

  subroutine make_directory()
    character(len=256) :: tmp
    integer :: length, status
    if (rank == 0) then
      call get_environment_variable("TMPDIR", tmp, length, status)
      if (status /= 0 .or. length == 0) tmp = "/tmp"
      write (dir, '(a,a,i0)') trim(tmp), "/cairn_fortran_", c_getpid()
      call execute_command_line("mkdir -p '"//trim(dir)//"'", exitstat=status)
      if (status /= 0) then
        write (error_unit, '(a)') "cannot create "//trim(dir)
        call MPI_Abort(MPI_COMM_WORLD, 2, ierr)
      end if
    end if
    call MPI_Bcast(dir, len(dir), MPI_CHARACTER, 0, MPI_COMM_WORLD, ierr)
  end subroutine make_directory

  subroutine expect(condition, what)
    logical, intent(in) :: condition
    character(len=*), intent(in) :: what
    if (.not. condition) then
      write (error_unit, '(a,i0,a)') "[rank ", rank, "] FAILED: "//what
      failures = failures + 1
    end if
  end subroutine expect

  subroutine expect_ok(status, what)
    integer, intent(in) :: status
    character(len=*), intent(in) :: what
    if (status /= CAIRN_SUCCESS) then
      write (error_unit, '(a,i0,a,i0,a)') "[rank ", rank, "] FAILED: ", status, " from "//what//": "// &
        cairn_last_error()
      failures = failures + 1
    end if
  end subroutine expect_ok

  ! status must be `code`, and cairn_last_error() must contain `part`.
  subroutine expect_error(status, code, part, what)
    integer, intent(in) :: status, code
    character(len=*), intent(in) :: part, what
    if (status /= code) then
      write (error_unit, '(a,i0,a,i0,a,i0,a)') "[rank ", rank, "] FAILED: ", status, " (expected ", code, &
        ") from "//what//": "//cairn_last_error()
      failures = failures + 1
    else if (index(cairn_last_error(), part) == 0) then
      write (error_unit, '(a,i0,a)') "[rank ", rank, "] FAILED: the message of "//what//" ('"// &
        cairn_last_error()//"') does not contain '"//part//"'"
      failures = failures + 1
    end if
  end subroutine expect_error

  ! The block of n items that part p of `parts` holds: 0-based start and count.
  subroutine split(n, parts, p, start, count)
    integer, intent(in) :: n, parts, p
    integer, intent(out) :: start, count
    count = n / parts
    start = p * count + min(p, mod(n, parts))
    if (p < mod(n, parts)) count = count + 1
  end subroutine split

  ! The value of global element (i, j, k), 0-based.
  pure real(c_double) function f(i, j, k)
    integer, intent(in) :: i, j, k
    f = real(i + 10 * j + 100 * k, c_double)
  end function f

  ! mpi_f08 codes pass comm%MPI_VAL.
  subroutine test_mpi_f08_communicator()
    use mpi_f08, only: f08_world => MPI_COMM_WORLD
    type(cairn_checkpointer) :: ck08
    call cairn_checkpointer_create(f08_world%MPI_VAL, ck08, ierr)
    call expect_ok(ierr, "cairn_checkpointer_create(MPI_COMM_WORLD%MPI_VAL)")
    call cairn_checkpointer_free(ck08, ierr)
    call expect_ok(ierr, "cairn_checkpointer_free")
  end subroutine test_mpi_f08_communicator

  subroutine test_round_trip()
    type(cairn_state) :: st
    real(c_double), allocatable, target :: a3(:, :, :), b3(:, :, :), v1(:), w1(:), a2(:, :), b2(:, :)
    real(c_float), allocatable, target :: s2(:, :), t2(:, :)
    integer(c_int32_t), allocatable, target :: i1(:), j1(:)
    integer(c_int64_t), allocatable, target :: l1(:), m1(:)
    integer(c_int32_t), target :: table(3), table_back(3)
    integer(c_int64_t), target :: step, step_back
    integer(c_int32_t), target :: seed(5), seed_back(5)
    real(c_double), target :: time, time_back
    integer :: k0, kc, i0, ic, i, j, k, n1
    character(len=600) :: id

    id = trim(dir)//"/round_trip"
    n1 = 3 * nranks + 2
    ! Saved: the 3-D array on blocks of dimension 3, the others on blocks of their last dimension.
    call split(nz, nranks, rank, k0, kc)
    allocate (a3(nx, ny, kc))
    do k = 1, kc
      do j = 1, ny
        do i = 1, nx
          a3(i, j, k) = f(i - 1, j - 1, k0 + k - 1)
        end do
      end do
    end do
    call split(n1, nranks, rank, i0, ic)
    allocate (v1(ic), i1(ic), l1(ic))
    do i = 1, ic
      v1(i) = 0.5d0 * (i0 + i)
      i1(i) = int(-7 * (i0 + i), c_int32_t)
      l1(i) = 3000000000_c_int64_t + (i0 + i)
    end do
    allocate (a2(nx, kc), s2(nx, kc))
    do k = 1, kc
      do i = 1, nx
        a2(i, k) = f(i - 1, 0, k0 + k - 1)
        s2(i, k) = real(f(i - 1, 1, k0 + k - 1), c_float)
      end do
    end do
    table = [11, 22, 33]
    seed = [1, 2, 3, 4, 5] * (rank + 1)
    step = 1234
    time = 2.5d0

    call cairn_state_create(st, ierr)
    call expect_ok(ierr, "cairn_state_create")
    call cairn_state_add_array(st, "f3", a3, [nx, ny, nz], [0, 0, k0], ierr)
    call expect_ok(ierr, "cairn_state_add_array(f3)")
    call cairn_state_add_array(st, "v1", v1, [n1], [i0], ierr)
    call expect_ok(ierr, "cairn_state_add_array(v1)")
    call cairn_state_add_array(st, "i1", i1, [n1], [i0], ierr)
    call expect_ok(ierr, "cairn_state_add_array(i1)")
    call cairn_state_add_array(st, "l1", l1, [n1], [i0], ierr)
    call expect_ok(ierr, "cairn_state_add_array(l1)")
    call cairn_state_add_array(st, "a2", a2, [nx, nz], [0, k0], ierr)
    call expect_ok(ierr, "cairn_state_add_array(a2)")
    ! Compressed on disk (deflate, level 1): the resharded load below reads it back the same.
    call cairn_state_set_compression(st, "a2", CAIRN_COMPRESSION_DEFLATE, 1, ierr)
    call expect_ok(ierr, "cairn_state_set_compression(a2)")
    call cairn_state_add_array(st, "s2", s2, [nx, nz], [0, k0], ierr)
    call expect_ok(ierr, "cairn_state_add_array(s2)")
    call cairn_state_add_replicated_array(st, "table", table, ierr)
    call expect_ok(ierr, "cairn_state_add_replicated_array(table)")
    call cairn_state_add_int64(st, "step", step, ierr)
    call expect_ok(ierr, "cairn_state_add_int64")
    call cairn_state_add_bytes(st, "seed", seed, ierr)
    call expect_ok(ierr, "cairn_state_add_bytes")
    call cairn_state_add_double(st, "time", time, ierr)
    call expect_ok(ierr, "cairn_state_add_double")
    call cairn_save(ck, st, trim(id), ierr)
    call expect_ok(ierr, "cairn_save")
    call cairn_state_free(st, ierr)

    ! Loaded: the 3-D and 2-D arrays on blocks of dimension 1, the vectors whole on every rank.
    call split(nx, nranks, rank, i0, ic)
    allocate (b3(ic, ny, nz), b2(ic, nz), t2(ic, nz), w1(n1), j1(n1), m1(n1))
    b3 = -1
    b2 = -1
    t2 = -1
    w1 = -1
    j1 = -1
    m1 = -1
    table_back = 0
    step_back = 0
    time_back = 0
    call cairn_state_create(st, ierr)
    call cairn_state_add_array(st, "f3", b3, [nx, ny, nz], [i0, 0, 0], ierr)
    call expect_ok(ierr, "cairn_state_add_array(f3) for load")
    call cairn_state_add_array(st, "v1", w1, [n1], [0], ierr)
    call cairn_state_add_array(st, "i1", j1, [n1], [0], ierr)
    call cairn_state_add_array(st, "l1", m1, [n1], [0], ierr)
    call cairn_state_add_array(st, "a2", b2, [nx, nz], [i0, 0], ierr)
    call cairn_state_add_array(st, "s2", t2, [nx, nz], [i0, 0], ierr)
    call cairn_state_add_replicated_array(st, "table", table_back, ierr)
    call cairn_state_add_int64(st, "step", step_back, ierr)
    call cairn_state_add_double(st, "time", time_back, ierr)
    seed_back = 0
    call cairn_state_add_bytes(st, "seed", seed_back, ierr)
    call expect_ok(ierr, "building the load state")
    call cairn_load(ck, st, trim(id), ierr)
    call expect_ok(ierr, "cairn_load")
    call cairn_state_free(st, ierr)

    do k = 1, nz
      do j = 1, ny
        do i = 1, ic
          if (b3(i, j, k) /= f(i0 + i - 1, j - 1, k - 1)) then
            call expect(.false., "f3 differs after resharding from dimension 3 to dimension 1")
            return
          end if
        end do
      end do
    end do
    do k = 1, nz
      do i = 1, ic
        call expect(b2(i, k) == f(i0 + i - 1, 0, k - 1), "a2 differs after resharding")
        call expect(t2(i, k) == real(f(i0 + i - 1, 1, k - 1), c_float), "s2 (real(4)) differs after resharding")
      end do
    end do
    do i = 1, n1
      call expect(w1(i) == 0.5d0 * i, "v1 (real(8), rank 1) differs")
      call expect(j1(i) == -7 * i, "i1 (integer(4)) differs")
      call expect(m1(i) == 3000000000_c_int64_t + i, "l1 (integer(8)) differs")
    end do
    call expect(all(table_back == [11, 22, 33]), "the replicated table differs")
    call expect(step_back == 1234, "the int64 scalar differs")
    call expect(all(seed_back == [1, 2, 3, 4, 5] * (rank + 1)), "this rank's blob differs")
    call expect(time_back == 2.5d0, "the double scalar differs")
  end subroutine test_round_trip

  subroutine test_async()
    type(cairn_state) :: st
    type(cairn_request) :: req
    real(c_double), target :: x(100), y(100)
    logical :: done
    integer :: i, polls
    character(len=600) :: id
    id = trim(dir)//"/async"
    do i = 1, 100
      x(i) = rank * 1000 + i
    end do
    call cairn_state_create(st, ierr)
    call cairn_state_add_array(st, "x", x, [100 * nranks], [100 * rank], ierr)
    call cairn_async_save(ck, st, trim(id), req, ierr)
    call expect_ok(ierr, "cairn_async_save")
    x = -1  ! the save holds the values at cairn_async_save
    done = .false.
    do polls = 1, 100000
      call cairn_test(req, done, ierr)
      call expect_ok(ierr, "cairn_test")
      if (done) exit
      call execute_command_line("sleep 0.01")
    end do
    call expect(done, "cairn_test never reported the save done")
    call cairn_wait(req, ierr)
    call expect_ok(ierr, "cairn_wait")
    call cairn_state_free(st, ierr)
    y = 0
    call cairn_state_create(st, ierr)
    call cairn_state_add_array(st, "x", y, [100 * nranks], [100 * rank], ierr)
    call cairn_load(ck, st, trim(id), ierr)
    call expect_ok(ierr, "cairn_load after cairn_async_save")
    call cairn_state_free(st, ierr)
    do i = 1, 100
      x(i) = rank * 1000 + i
    end do
    call expect(all(y == x), "the async save reads back other values than at cairn_async_save")
  end subroutine test_async

  subroutine test_manager()
    type(cairn_manager) :: mgr
    type(cairn_state) :: st
    real(c_double), target :: u(10), back(10)
    integer(c_int64_t), target :: step
    integer(c_int64_t) :: latest
    logical :: found, saved, restored
    character(len=600) :: root
    root = trim(dir)//"/managed"
    call cairn_manager_create(MPI_COMM_WORLD, trim(root), 3, 2, mgr, ierr)
    call expect_ok(ierr, "cairn_manager_create")
    call cairn_state_create(st, ierr)
    call cairn_state_add_array(st, "u", u, [10 * nranks], [10 * rank], ierr)
    call cairn_state_add_int64(st, "step", step, ierr)
    do step = 1, 7
      u = real(step * 100 + rank, c_double)
      call cairn_manager_save_if_due(mgr, st, step, saved, ierr)
      call expect_ok(ierr, "cairn_manager_save_if_due")
      call expect(saved .eqv. (mod(step, 3_c_int64_t) == 0), "save_if_due saved on the wrong steps")
    end do
    call cairn_manager_wait(mgr, ierr)
    call expect_ok(ierr, "cairn_manager_wait")
    call cairn_manager_latest(mgr, latest, found, ierr)
    call expect_ok(ierr, "cairn_manager_latest")
    call expect(found .and. latest == 6, "latest is not step 6")
    call cairn_manager_free(mgr, ierr)
    call expect_ok(ierr, "cairn_manager_free")
    call cairn_state_free(st, ierr)

    back = 0
    step = 0
    call cairn_manager_create(MPI_COMM_WORLD, trim(root), 3, 2, mgr, ierr, keep_every=100, deep_check=.true.)
    call cairn_state_create(st, ierr)
    call cairn_state_add_array(st, "u", back, [10 * nranks], [10 * rank], ierr)
    call cairn_state_add_int64(st, "step", step, ierr)
    call cairn_manager_restore_or_start(mgr, st, latest, restored, ierr)
    call expect_ok(ierr, "cairn_manager_restore_or_start")
    call expect(restored .and. latest == 6 .and. step == 6, "restore_or_start did not restore step 6")
    call expect(all(back == real(600 + rank, c_double)), "the restored array differs from step 6's")
    call cairn_manager_free(mgr, ierr)
    call cairn_state_free(st, ierr)
  end subroutine test_manager

  subroutine test_errors()
    type(cairn_state) :: st, null_state
    type(cairn_checkpointer) :: null_ck
    real(c_double), target :: grid(4, 6), wrong(6, 4)
    grid = 1
    call cairn_state_create(st, ierr)
    ! A section with a stride is not contiguous: refused, since Cairn keeps the address.
    call cairn_state_add_array(st, "section", grid(1:4:2, :), [2, 6], [0, 0], ierr)
    call expect(ierr == CAIRN_ERR_USAGE, "a non-contiguous section was accepted")
    ! global_shape of the wrong length.
    call cairn_state_add_array(st, "grid", grid, [4], [0], ierr)
    call expect(ierr == CAIRN_ERR_USAGE, "a global_shape of the wrong length was accepted")
    ! Null handles.
    call cairn_save(null_ck, st, trim(dir)//"/x", ierr)
    call expect_error(ierr, CAIRN_ERR_USAGE, "'ck'", "cairn_save with a null checkpointer")
    call cairn_state_add_array(null_state, "grid", grid, [4, 6], [0, 0], ierr)
    call expect_error(ierr, CAIRN_ERR_USAGE, "'st'", "cairn_state_add_array with a null state")
    call cairn_state_free(st, ierr)

    call cairn_state_create(st, ierr)
    call cairn_state_add_replicated_array(st, "grid", grid, ierr)
    call cairn_save(ck, st, trim(dir)//"/errors", ierr)
    call expect_ok(ierr, "cairn_save of the error checkpoint")
    call cairn_state_free(st, ierr)
    ! A shape mismatch on load names the entry.
    call cairn_state_create(st, ierr)
    call cairn_state_add_replicated_array(st, "grid", wrong, ierr)
    call cairn_load(ck, st, trim(dir)//"/errors", ierr)
    call expect_error(ierr, CAIRN_ERR_USAGE, "grid", "cairn_load with another shape")
    ! A missing checkpoint.
    call cairn_load(ck, st, trim(dir)//"/never_saved", ierr)
    call expect_error(ierr, CAIRN_ERR_STORAGE, "never_saved", "cairn_load of a missing checkpoint")
    call cairn_state_free(st, ierr)
    call cairn_checkpointer_free(null_ck, ierr)
    call expect_ok(ierr, "cairn_checkpointer_free of a null handle")
    call expect(len(cairn_last_error()) == 0, "the message after a success is '"//cairn_last_error()//"'")
  end subroutine test_errors

end program test_fortran
