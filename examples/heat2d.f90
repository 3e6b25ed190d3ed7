! heat2d: 2-D heat diffusion in Fortran on an MPI column-block decomposition, checkpointed and
! restarted with Cairn's Fortran module.
!
!   mpirun -np P heat2d --steps N --checkpoint-every K --dir DIR [--n GRID] [--restart]
!                       [--stop-at STEP] [--keep C] [--out FILE] [--reference FILE]
!
! An explicit 5-point stencil advances a GRID x GRID double-precision field with zero (Dirichlet)
! boundaries. Rank r holds the contiguous block of columns u(1:GRID, j0+1:j0+nyl) of the global
! field, so the field is checkpointed as the global (GRID, GRID) array "heat/u" in Fortran order
! with offset [0, j0] (offsets are 0-based), together with the step and the simulated time. A
! CheckpointManager over DIR saves every K steps, asynchronously (the write overlaps the next
! steps); --keep C keeps the newest C checkpoints (default 1000). With --restart the run resumes
! from the newest checkpoint in DIR on any number of ranks: Cairn reads the saved global field into
! this run's decomposition. --stop-at S ends the run after step S (an interrupted run). At the end
! rank 0 prints "checksum: <sum>" and "max: <max>" of the field; --out FILE writes the field
! (GRID*GRID doubles, Fortran order) to FILE, and --reference FILE compares the field with such a
! file, prints "max error: <e>" and exits with status 1 unless the two are bitwise equal. Every
! grid point is updated with the same arithmetic in any decomposition, so an interrupted and
! resumed run on other rank counts must equal an uninterrupted run bit for bit.
program heat2d
  use mpi
  use cairn
  use, intrinsic :: iso_c_binding, only: c_int64_t, c_double
  use, intrinsic :: iso_fortran_env, only: error_unit, output_unit
  implicit none

  integer :: n = 47, keep = 1000
  integer(c_int64_t) :: steps = -1, every = -1, stop_at = -1
  character(len=1024) :: dir = "", out_file = "", reference_file = ""
  logical :: restart = .false.

  integer :: ierr, rank, nranks, j0, nyl, left, right, status, provided
  real(c_double), allocatable, target :: u(:, :)
  real(c_double), allocatable :: unew(:, :), ghost_left(:), ghost_right(:), field(:, :)
  integer(c_int64_t), target :: step
  real(c_double), target :: time
  integer(c_int64_t) :: first_step, resumed_step
  logical :: restored, saved
  type(cairn_manager) :: mgr
  type(cairn_state) :: st
  real(c_double), parameter :: alpha = 0.2d0, dt = 1.0d-3

  ! MPI_THREAD_MULTIPLE lets Cairn's worker thread write checkpoints while the steps go on.
  call MPI_Init_thread(MPI_THREAD_MULTIPLE, provided, ierr)
  call MPI_Comm_rank(MPI_COMM_WORLD, rank, ierr)
  call MPI_Comm_size(MPI_COMM_WORLD, nranks, ierr)
  call parse_arguments()

  ! Column blocks: rank r holds columns j0+1 .. j0+nyl.
  nyl = n / nranks
  j0 = rank * nyl + min(rank, mod(n, nranks))
  if (rank < mod(n, nranks)) nyl = nyl + 1
  left = merge(MPI_PROC_NULL, rank - 1, rank == 0)
  right = merge(MPI_PROC_NULL, rank + 1, rank == nranks - 1)
  allocate (u(n, nyl), unew(n, nyl), ghost_left(n), ghost_right(n))
  call initial_field()
  step = 0
  time = 0

  ! The checkpoint: the global field (this rank's columns), the step and the time.
  call cairn_state_create(st, status)
  call check(status, "cairn_state_create")
  call cairn_state_add_array(st, "heat/u", u, [n, n], [0, j0], status)
  call check(status, "cairn_state_add_array")
  call cairn_state_add_int64(st, "heat/step", step, status)
  call check(status, "cairn_state_add_int64")
  call cairn_state_add_double(st, "heat/time", time, status)
  call check(status, "cairn_state_add_double")
  call cairn_manager_create(MPI_COMM_WORLD, trim(dir), int(every), keep, mgr, status)
  call check(status, "cairn_manager_create")

  first_step = 1
  if (restart) then
    call cairn_manager_restore_or_start(mgr, st, resumed_step, restored, status)
    call check(status, "cairn_manager_restore_or_start")
    if (restored) then
      if (step /= resumed_step) call die("the checkpoint's step scalar disagrees with its name")
      first_step = step + 1
      if (rank == 0) write (output_unit, '(a,i0,a,i0,a)') "resumed from step ", step, " on ", nranks, " ranks"
    else
      if (rank == 0) write (output_unit, '(a)') "no checkpoint: starting from step 0"
    end if
  end if

  do step = first_step, steps
    call advance()
    time = time + dt
    call cairn_manager_save_if_due(mgr, st, step, saved, status)
    call check(status, "cairn_manager_save_if_due")
    if (saved .and. rank == 0) write (output_unit, '(a,i0)') "checkpoint started at step ", step
    if (step == stop_at) exit
  end do
  call cairn_manager_wait(mgr, status)
  call check(status, "cairn_manager_wait")
  call cairn_manager_free(mgr, status)
  call check(status, "cairn_manager_free")
  call cairn_state_free(st, status)

  if (stop_at >= 0 .and. stop_at < steps) then
    if (rank == 0) write (output_unit, '(a,i0)') "stopped after step ", stop_at
  else
    call report()
  end if
  call MPI_Finalize(ierr)
  if (status /= 0) stop 1

contains

  subroutine parse_arguments()
    integer :: i, count
    character(len=1024) :: arg, value
    count = command_argument_count()
    i = 1
    do while (i <= count)
      call get_command_argument(i, arg)
      select case (trim(arg))
      case ("--restart")
        restart = .true.
        i = i + 1
        cycle
      case ("--steps", "--checkpoint-every", "--dir", "--n", "--stop-at", "--keep", "--out", "--reference")
        if (i == count) call die(trim(arg)//" needs a value")
        call get_command_argument(i + 1, value)
      case default
        call die("unknown argument '"//trim(arg)//"'")
      end select
      select case (trim(arg))
      case ("--steps")
        steps = to_int(arg, value)
      case ("--checkpoint-every")
        every = to_int(arg, value)
      case ("--dir")
        dir = value
      case ("--n")
        n = int(to_int(arg, value))
      case ("--stop-at")
        stop_at = to_int(arg, value)
      case ("--keep")
        keep = int(to_int(arg, value))
      case ("--out")
        out_file = value
      case ("--reference")
        reference_file = value
      end select
      i = i + 2
    end do
    if (steps < 0 .or. every <= 0 .or. len_trim(dir) == 0 .or. n < nranks .or. keep < 1) &
      call die("usage: heat2d --steps N --checkpoint-every K --dir DIR [--n GRID >= ranks] [--restart] "// &
               "[--stop-at STEP] [--keep C] [--out FILE] [--reference FILE]")
  end subroutine parse_arguments

  integer(c_int64_t) function to_int(flag, text)
    character(len=*), intent(in) :: flag, text
    integer :: ios
    read (text, *, iostat=ios) to_int
    if (ios /= 0) call die(trim(flag)//" needs an integer, not '"//trim(text)//"'")
  end function to_int

  subroutine die(message)
    character(len=*), intent(in) :: message
    integer :: ignored
    if (rank == 0) write (error_unit, '(a)') "heat2d: error: "//message
    call MPI_Abort(MPI_COMM_WORLD, 2, ignored)
    error stop 2
  end subroutine die

  subroutine check(code, what)
    integer, intent(in) :: code
    character(len=*), intent(in) :: what
    if (code /= CAIRN_SUCCESS) then
      write (error_unit, '(a,i0,a,i0,a)') "heat2d: error on rank ", rank, ": ", code, &
        " from "//what//": "//cairn_last_error()
      call MPI_Abort(MPI_COMM_WORLD, 3, ierr)
      error stop 3
    end if
  end subroutine check

  subroutine initial_field()
    integer :: i, j
    do j = 1, nyl
      do i = 1, n
        u(i, j) = real(mod(7 * i + 13 * (j0 + j), 17), c_double) / 17.0d0
      end do
    end do
  end subroutine initial_field

  ! One explicit step: exchange the edge columns with the neighbours, then the 5-point stencil.
  subroutine advance()
    integer :: i, j
    integer :: stat(MPI_STATUS_SIZE)
    real(c_double) :: west, east, north, south
    ghost_left = 0
    ghost_right = 0
    call MPI_Sendrecv(u(:, 1), n, MPI_DOUBLE_PRECISION, left, 1, ghost_right, n, MPI_DOUBLE_PRECISION, right, 1, &
                      MPI_COMM_WORLD, stat, ierr)
    call MPI_Sendrecv(u(:, nyl), n, MPI_DOUBLE_PRECISION, right, 2, ghost_left, n, MPI_DOUBLE_PRECISION, left, 2, &
                      MPI_COMM_WORLD, stat, ierr)
    do j = 1, nyl
      do i = 1, n
        north = 0
        south = 0
        if (i > 1) north = u(i - 1, j)
        if (i < n) south = u(i + 1, j)
        if (j > 1) then
          west = u(i, j - 1)
        else
          west = ghost_left(i)
        end if
        if (j < nyl) then
          east = u(i, j + 1)
        else
          east = ghost_right(i)
        end if
        unew(i, j) = u(i, j) + alpha * (north + south + west + east - 4.0d0 * u(i, j))
      end do
    end do
    u = unew
  end subroutine advance

  ! Gathers the field on rank 0, prints its checksum, writes --out and compares with --reference.
  subroutine report()
    integer, allocatable :: counts(:), displs(:)
    real(c_double), allocatable :: expected(:, :)
    integer :: r, unit, ios
    real(c_double) :: max_error
    allocate (counts(nranks), displs(nranks))
    call MPI_Gather(n * nyl, 1, MPI_INTEGER, counts, 1, MPI_INTEGER, 0, MPI_COMM_WORLD, ierr)
    if (rank == 0) then
      displs(1) = 0
      do r = 2, nranks
        displs(r) = displs(r - 1) + counts(r - 1)
      end do
      allocate (field(n, n))
    else
      allocate (field(1, 1))
    end if
    call MPI_Gatherv(u, n * nyl, MPI_DOUBLE_PRECISION, field, counts, displs, MPI_DOUBLE_PRECISION, 0, &
                     MPI_COMM_WORLD, ierr)
    if (rank /= 0) return
    ! Summed in one fixed order on one rank: equal fields give equal checksums.
    write (output_unit, '(a,es24.16e3)') "checksum: ", sum(field)
    write (output_unit, '(a,es24.16e3)') "max: ", maxval(field)
    write (output_unit, '(a,i0,a,es24.16e3)') "final step ", steps, ", time ", time
    if (len_trim(out_file) > 0) then
      open (newunit=unit, file=trim(out_file), access="stream", form="unformatted", status="replace", iostat=ios)
      if (ios /= 0) call die("cannot write '"//trim(out_file)//"'")
      write (unit) field
      close (unit)
    end if
    if (len_trim(reference_file) > 0) then
      allocate (expected(n, n))
      open (newunit=unit, file=trim(reference_file), access="stream", form="unformatted", status="old", &
            action="read", iostat=ios)
      if (ios /= 0) call die("cannot read '"//trim(reference_file)//"'")
      read (unit, iostat=ios) expected
      close (unit)
      if (ios /= 0) call die("'"//trim(reference_file)//"' does not hold a field of this grid")
      max_error = maxval(abs(field - expected))
      write (output_unit, '(a,es12.4e3)') "max error: ", max_error
      if (any(field /= expected)) then
        write (error_unit, '(a)') "heat2d: the field differs from the reference '"//trim(reference_file)//"'"
        status = 1
      else
        write (output_unit, '(a)') "the field equals the reference bit for bit"
      end if
    end if
  end subroutine report

end program heat2d
