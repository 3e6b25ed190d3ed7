! Fortran module `cairn`: Cairn's checkpoints from Fortran, over the C API (include/cairn/cairn.h).
!
!   use cairn
!   type(cairn_checkpointer) :: ck
!   type(cairn_state) :: st
!   call cairn_checkpointer_create(MPI_COMM_WORLD, ck, ierr)   ! `use mpi_f08`: comm%MPI_VAL
!   call cairn_state_create(st, ierr)
!   call cairn_state_add_array(st, "fields/T", t, [nx, ny], [ox, oy], ierr)
!   call cairn_save(ck, st, "ckpt/run1", ierr)
!
! Conventions
! - Communicators are default integers: a `use mpi` communicator, or `comm%MPI_VAL` with mpi_f08.
! - Every routine takes an optional `ierr`: 0 on success, else a CAIRN_ERR_* code, with the message
!   in cairn_last_error(). Without `ierr` a failure prints the message to stderr and stops the
!   program (error stop) - which under mpirun ends the job.
! - Arrays keep Fortran's dimension order: `t(nx, ny)` is the block of the global (NX, NY) array
!   whose first element t(1,1) is global element (ox+1, oy+1); call it with global_shape = [NX, NY],
!   offset = [ox, oy]. OFFSETS ARE 0-BASED, as in MPI_Type_create_subarray and h5sselect_hyperslab:
!   offset(d) is the number of global elements before this block along dimension d. The checkpoint
!   stores the global array in this order (column-major chunks, cairn::Layout::ColumnMajor): h5py
!   shows a dataset of shape (NX, NY) whose [i, j] is global element (i+1, j+1), that is
!   t(i+1-ox, j+1-oy) on the rank that holds it; a C or C++ program reads the same logical array
!   with global shape {NX, NY}. Any decomposition saved loads into any other. global_shape and
!   offset are default integers, one per dimension of the array.
! - Initialize MPI with MPI_Init_thread(MPI_THREAD_MULTIPLE, ...) so that asynchronous saves are
!   written in the background; below it they are written inside cairn_wait/cairn_test.
! - The state stores the addresses of the arrays and scalars it is given, not copies: give it
!   contiguous arrays (not array sections) and variables that stay in place (declare them with the
!   TARGET attribute, or ALLOCATABLE/module variables) until the save or load that uses them. A
!   rank that holds no part of an array passes an array of size 0.
! - Collective routines (over the checkpointer's or manager's communicator): the create and free
!   routines of checkpointers and managers, cairn_save, cairn_async_save, cairn_load and every
!   cairn_manager_* routine; cairn_wait and cairn_test when MPI runs below MPI_THREAD_MULTIPLE.
module cairn
  use, intrinsic :: iso_c_binding
  use, intrinsic :: iso_fortran_env, only: error_unit
  implicit none
  private

  ! Status codes (values of cairn::ErrorCode).
  integer, parameter, public :: CAIRN_SUCCESS = 0, CAIRN_ERR_USAGE = 1, CAIRN_ERR_STORAGE = 2, &
                                CAIRN_ERR_COMMUNICATION = 3, CAIRN_ERR_CORRUPT = 4, &
                                CAIRN_ERR_UNSUPPORTED = 5, CAIRN_ERR_INTERNAL = 6, CAIRN_ERR_DEVICE = 7
  ! Element types (values of cairn::DType); the generic routines choose them from the array's type.
  integer, parameter, public :: CAIRN_INT8 = 0, CAIRN_INT16 = 1, CAIRN_INT32 = 2, CAIRN_INT64 = 3, &
                                CAIRN_UINT8 = 4, CAIRN_UINT16 = 5, CAIRN_UINT32 = 6, CAIRN_UINT64 = 7, &
                                CAIRN_FLOAT32 = 8, CAIRN_FLOAT64 = 9, CAIRN_BOOL = 10
  ! Lossless compression on disk (values of cairn::Compression), for cairn_state_set_compression.
  integer, parameter, public :: CAIRN_COMPRESSION_NONE = 0, CAIRN_COMPRESSION_DEFLATE = 1, &
                                CAIRN_COMPRESSION_ZSTD = 2

  ! Opaque handles; a null `ptr` is a handle not created (or freed).
  type, public :: cairn_checkpointer
    type(c_ptr) :: ptr = c_null_ptr
  end type cairn_checkpointer
  type, public :: cairn_state
    type(c_ptr) :: ptr = c_null_ptr
  end type cairn_state
  type, public :: cairn_request
    type(c_ptr) :: ptr = c_null_ptr
  end type cairn_request
  type, public :: cairn_manager
    type(c_ptr) :: ptr = c_null_ptr
  end type cairn_manager

  ! cairn_manager_options of cairn.h.
  type, bind(c) :: manager_options_c
    integer(c_int64_t) :: every_steps
    real(c_double) :: every_seconds
    integer(c_int) :: keep_last
    integer(c_int64_t) :: keep_every
    integer(c_int) :: deep_check
    integer(c_int) :: zero_copy
    real(c_double) :: mtbf_seconds
    real(c_double) :: time_limit_seconds
    real(c_double) :: exit_margin_seconds
    type(c_ptr) :: local_root
    integer(c_int) :: partner_copies
    real(c_double) :: drain_bytes_per_second
    integer(c_int) :: incremental
    integer(c_int) :: full_every
  end type manager_options_c

  ! The message of a usage error found by this module before any C call (the C API keeps the others).
  character(len=:), allocatable :: fortran_error

  public :: cairn_version, cairn_last_error
  public :: cairn_checkpointer_create, cairn_checkpointer_free, cairn_checkpointer_set_overwrite
  public :: cairn_state_create, cairn_state_free, cairn_state_add_array, cairn_state_add_replicated_array
  public :: cairn_state_add_int64, cairn_state_add_double, cairn_state_add_bytes, cairn_state_set_compression
  public :: cairn_save, cairn_async_save, cairn_wait, cairn_test, cairn_load
  public :: cairn_manager_create, cairn_manager_free, cairn_manager_save_if_due, cairn_manager_save
  public :: cairn_manager_wait, cairn_manager_latest, cairn_manager_restore_or_start
  public :: cairn_manager_should_exit

  !> cairn_state_add_array(st, name, array, global_shape, offset [, ierr]): adds a sharded array of
  !> which this rank holds `array` (real(4|8), integer(4|8), rank 1 to 3), at the 0-based `offset`
  !> in the `global_shape` array. Not collective.
  !> cairn_state_add_replicated_array(st, name, array [, ierr]): an array every rank holds whole
  !> and identically; written once. Not collective.
  interface cairn_state_add_array
    module procedure add_array_r8_1, add_array_r8_2, add_array_r8_3, add_array_r4_1
    module procedure add_array_r4_2, add_array_r4_3, add_array_i4_1, add_array_i4_2
    module procedure add_array_i4_3, add_array_i8_1, add_array_i8_2, add_array_i8_3
  end interface cairn_state_add_array
  interface cairn_state_add_replicated_array
    module procedure add_replicated_r8_1, add_replicated_r8_2, add_replicated_r8_3, add_replicated_r4_1
    module procedure add_replicated_r4_2, add_replicated_r4_3, add_replicated_i4_1, add_replicated_i4_2
    module procedure add_replicated_i4_3, add_replicated_i8_1, add_replicated_i8_2, add_replicated_i8_3
  end interface cairn_state_add_replicated_array
  !> cairn_state_add_bytes(st, name, buffer [, ierr]): adds the bytes of `buffer` (a contiguous
  !> integer(1|4|8) or real(8) array, e.g. the seed of random_seed(get=...)) as a rank-local blob:
  !> every rank saves its own and gets its own back on a load on the same number of ranks. The
  !> size must match on load. Not collective.
  interface cairn_state_add_bytes
    module procedure add_bytes_i1, add_bytes_i4, add_bytes_i8, add_bytes_r8
  end interface cairn_state_add_bytes

  interface
    function c_version() bind(c, name="cairn_version")
      import :: c_ptr
      type(c_ptr) :: c_version
    end function c_version
    function c_last_error() bind(c, name="cairn_last_error")
      import :: c_ptr
      type(c_ptr) :: c_last_error
    end function c_last_error
    function c_strlen(s) bind(c, name="strlen")
      import :: c_ptr, c_size_t
      type(c_ptr), value :: s
      integer(c_size_t) :: c_strlen
    end function c_strlen
    function c_checkpointer_create_f(comm, out) bind(c, name="cairn_checkpointer_create_f")
      import :: c_int, c_ptr
      integer(c_int), value :: comm
      type(c_ptr) :: out
      integer(c_int) :: c_checkpointer_create_f
    end function c_checkpointer_create_f
    function c_checkpointer_free(ck) bind(c, name="cairn_checkpointer_free")
      import :: c_int, c_ptr
      type(c_ptr), value :: ck
      integer(c_int) :: c_checkpointer_free
    end function c_checkpointer_free
    function c_checkpointer_set_overwrite(ck, overwrite) bind(c, name="cairn_checkpointer_set_overwrite")
      import :: c_int, c_ptr
      type(c_ptr), value :: ck
      integer(c_int), value :: overwrite
      integer(c_int) :: c_checkpointer_set_overwrite
    end function c_checkpointer_set_overwrite
    function c_state_create(out) bind(c, name="cairn_state_create")
      import :: c_int, c_ptr
      type(c_ptr) :: out
      integer(c_int) :: c_state_create
    end function c_state_create
    function c_state_free(st) bind(c, name="cairn_state_free")
      import :: c_int, c_ptr
      type(c_ptr), value :: st
      integer(c_int) :: c_state_free
    end function c_state_free
    function c_state_add_array_colmajor(st, name, dtype, ndim, global_shape, offset, local_shape, data) &
        bind(c, name="cairn_state_add_array_colmajor")
      import :: c_int, c_ptr, c_char, c_int64_t
      type(c_ptr), value :: st
      character(kind=c_char), intent(in) :: name(*)
      integer(c_int), value :: dtype, ndim
      integer(c_int64_t), intent(in) :: global_shape(*), offset(*), local_shape(*)
      type(c_ptr), value :: data
      integer(c_int) :: c_state_add_array_colmajor
    end function c_state_add_array_colmajor
    function c_state_add_replicated_array(st, name, dtype, ndim, shape, data, layout) &
        bind(c, name="cairn_state_add_replicated_array")
      import :: c_int, c_ptr, c_char, c_int64_t
      type(c_ptr), value :: st
      character(kind=c_char), intent(in) :: name(*)
      integer(c_int), value :: dtype, ndim
      integer(c_int64_t), intent(in) :: shape(*)
      type(c_ptr), value :: data
      integer(c_int), value :: layout
      integer(c_int) :: c_state_add_replicated_array
    end function c_state_add_replicated_array
    function c_state_add_bytes(st, name, data, nbytes) bind(c, name="cairn_state_add_bytes")
      import :: c_int, c_ptr, c_char, c_int64_t
      type(c_ptr), value :: st
      character(kind=c_char), intent(in) :: name(*)
      type(c_ptr), value :: data
      integer(c_int64_t), value :: nbytes
      integer(c_int) :: c_state_add_bytes
    end function c_state_add_bytes
    function c_state_set_compression(st, name, method, level) bind(c, name="cairn_state_set_compression")
      import :: c_int, c_ptr, c_char
      type(c_ptr), value :: st
      character(kind=c_char), intent(in) :: name(*)
      integer(c_int), value :: method, level
      integer(c_int) :: c_state_set_compression
    end function c_state_set_compression
    function c_state_add_int64(st, name, value) bind(c, name="cairn_state_add_int64")
      import :: c_int, c_ptr, c_char
      type(c_ptr), value :: st
      character(kind=c_char), intent(in) :: name(*)
      type(c_ptr), value :: value
      integer(c_int) :: c_state_add_int64
    end function c_state_add_int64
    function c_state_add_double(st, name, value) bind(c, name="cairn_state_add_double")
      import :: c_int, c_ptr, c_char
      type(c_ptr), value :: st
      character(kind=c_char), intent(in) :: name(*)
      type(c_ptr), value :: value
      integer(c_int) :: c_state_add_double
    end function c_state_add_double
    function c_save(ck, st, id) bind(c, name="cairn_save")
      import :: c_int, c_ptr, c_char
      type(c_ptr), value :: ck, st
      character(kind=c_char), intent(in) :: id(*)
      integer(c_int) :: c_save
    end function c_save
    function c_async_save(ck, st, id, out) bind(c, name="cairn_async_save")
      import :: c_int, c_ptr, c_char
      type(c_ptr), value :: ck, st
      character(kind=c_char), intent(in) :: id(*)
      type(c_ptr) :: out
      integer(c_int) :: c_async_save
    end function c_async_save
    function c_wait(req) bind(c, name="cairn_wait")
      import :: c_int, c_ptr
      type(c_ptr), value :: req
      integer(c_int) :: c_wait
    end function c_wait
    function c_test(req, done) bind(c, name="cairn_test")
      import :: c_int, c_ptr
      type(c_ptr), value :: req
      integer(c_int) :: done
      integer(c_int) :: c_test
    end function c_test
    function c_load(ck, st, id) bind(c, name="cairn_load")
      import :: c_int, c_ptr, c_char
      type(c_ptr), value :: ck, st
      character(kind=c_char), intent(in) :: id(*)
      integer(c_int) :: c_load
    end function c_load
    function c_manager_options_init(options) bind(c, name="cairn_manager_options_init")
      import :: c_int, manager_options_c
      type(manager_options_c) :: options
      integer(c_int) :: c_manager_options_init
    end function c_manager_options_init
    function c_manager_create_f(comm, root, options, out) bind(c, name="cairn_manager_create_f")
      import :: c_int, c_ptr, c_char, manager_options_c
      integer(c_int), value :: comm
      character(kind=c_char), intent(in) :: root(*)
      type(manager_options_c), intent(in) :: options
      type(c_ptr) :: out
      integer(c_int) :: c_manager_create_f
    end function c_manager_create_f
    function c_manager_free(mgr) bind(c, name="cairn_manager_free")
      import :: c_int, c_ptr
      type(c_ptr), value :: mgr
      integer(c_int) :: c_manager_free
    end function c_manager_free
    function c_manager_save_if_due(mgr, st, step, saved) bind(c, name="cairn_manager_save_if_due")
      import :: c_int, c_ptr, c_int64_t
      type(c_ptr), value :: mgr, st
      integer(c_int64_t), value :: step
      integer(c_int) :: saved
      integer(c_int) :: c_manager_save_if_due
    end function c_manager_save_if_due
    function c_manager_should_exit(mgr, st, step, exit_now) bind(c, name="cairn_manager_should_exit")
      import :: c_int, c_ptr, c_int64_t
      type(c_ptr), value :: mgr, st
      integer(c_int64_t), value :: step
      integer(c_int) :: exit_now
      integer(c_int) :: c_manager_should_exit
    end function c_manager_should_exit
    function c_manager_save(mgr, st, step) bind(c, name="cairn_manager_save")
      import :: c_int, c_ptr, c_int64_t
      type(c_ptr), value :: mgr, st
      integer(c_int64_t), value :: step
      integer(c_int) :: c_manager_save
    end function c_manager_save
    function c_manager_wait(mgr) bind(c, name="cairn_manager_wait")
      import :: c_int, c_ptr
      type(c_ptr), value :: mgr
      integer(c_int) :: c_manager_wait
    end function c_manager_wait
    function c_manager_latest(mgr, step, found) bind(c, name="cairn_manager_latest")
      import :: c_int, c_ptr, c_int64_t
      type(c_ptr), value :: mgr
      integer(c_int64_t) :: step
      integer(c_int) :: found
      integer(c_int) :: c_manager_latest
    end function c_manager_latest
    function c_manager_restore_or_start(mgr, st, step, restored) bind(c, name="cairn_manager_restore_or_start")
      import :: c_int, c_ptr, c_int64_t
      type(c_ptr), value :: mgr, st
      integer(c_int64_t) :: step
      integer(c_int) :: restored
      integer(c_int) :: c_manager_restore_or_start
    end function c_manager_restore_or_start
  end interface

contains

  ! A C string (NUL-terminated) as a Fortran string; "" for NULL.
  function from_c_string(s) result(text)
    type(c_ptr), intent(in) :: s
    character(len=:), allocatable :: text
    character(kind=c_char), pointer :: chars(:)
    integer :: n, i
    if (.not. c_associated(s)) then
      text = ""
      return
    end if
    n = int(c_strlen(s))
    call c_f_pointer(s, chars, [n])
    allocate (character(len=n) :: text)
    do i = 1, n
      text(i:i) = chars(i)
    end do
  end function from_c_string

  ! A Fortran string as a NUL-terminated C string (trailing blanks kept: names are exact).
  function c_string(text) result(s)
    character(len=*), intent(in) :: text
    character(kind=c_char, len=len(text) + 1) :: s
    s = text//c_null_char
  end function c_string

  ! Hands `status` to the caller through `ierr`, or, without `ierr`, stops on failure.
  subroutine finish(status, ierr)
    integer(c_int), intent(in) :: status
    integer, intent(out), optional :: ierr
    fortran_error = ""
    if (present(ierr)) then
      ierr = int(status)
    else if (status /= CAIRN_SUCCESS) then
      write (error_unit, '(a)') "cairn: "//cairn_last_error()
      error stop status
    end if
  end subroutine finish

  !> The library's version, "major.minor.patch". Not collective.
  function cairn_version() result(text)
    character(len=:), allocatable :: text
    text = from_c_string(c_version())
  end function cairn_version

  !> The message of the latest failed Cairn call on this thread; "" after a success. Not collective.
  function cairn_last_error() result(text)
    character(len=:), allocatable :: text
    if (allocated(fortran_error)) then
      if (len(fortran_error) > 0) then
        text = fortran_error
        return
      end if
    end if
    text = from_c_string(c_last_error())
  end function cairn_last_error

  !> Collective over `comm` (a `use mpi` communicator or `comm%MPI_VAL`): creates a checkpointer
  !> over a duplicate of it.
  subroutine cairn_checkpointer_create(comm, ck, ierr)
    integer, intent(in) :: comm
    type(cairn_checkpointer), intent(out) :: ck
    integer, intent(out), optional :: ierr
    call finish(c_checkpointer_create_f(int(comm, c_int), ck%ptr), ierr)
  end subroutine cairn_checkpointer_create

  !> Collective when a save is in flight (waits for it); frees the checkpointer. A null handle is
  !> accepted.
  subroutine cairn_checkpointer_free(ck, ierr)
    type(cairn_checkpointer), intent(inout) :: ck
    integer, intent(out), optional :: ierr
    integer(c_int) :: status
    status = c_checkpointer_free(ck%ptr)
    ck%ptr = c_null_ptr
    call finish(status, ierr)
  end subroutine cairn_checkpointer_free

  !> Not collective (set it alike on every rank): later saves may replace an existing checkpoint.
  subroutine cairn_checkpointer_set_overwrite(ck, overwrite, ierr)
    type(cairn_checkpointer), intent(in) :: ck
    logical, intent(in) :: overwrite
    integer, intent(out), optional :: ierr
    call finish(c_checkpointer_set_overwrite(ck%ptr, merge(1_c_int, 0_c_int, overwrite)), ierr)
  end subroutine cairn_checkpointer_set_overwrite

  !> Creates an empty state. Not collective.
  subroutine cairn_state_create(st, ierr)
    type(cairn_state), intent(out) :: st
    integer, intent(out), optional :: ierr
    call finish(c_state_create(st%ptr), ierr)
  end subroutine cairn_state_create

  !> Frees a state (not the arrays it points to). Not collective.
  subroutine cairn_state_free(st, ierr)
    type(cairn_state), intent(inout) :: st
    integer, intent(out), optional :: ierr
    integer(c_int) :: status
    status = c_state_free(st%ptr)
    st%ptr = c_null_ptr
    call finish(status, ierr)
  end subroutine cairn_state_free

  ! The body of cairn_state_add_array for every type and rank.
  subroutine add_sharded(st, name, dtype, local_shape, contiguous, address, global_shape, offset, ierr)
    type(cairn_state), intent(in) :: st
    character(len=*), intent(in) :: name
    integer, intent(in) :: dtype
    integer(c_int64_t), intent(in) :: local_shape(:)
    logical, intent(in) :: contiguous
    type(c_ptr), intent(in) :: address
    integer, intent(in) :: global_shape(:), offset(:)
    integer, intent(out), optional :: ierr
    integer(c_int64_t) :: g(size(local_shape)), o(size(local_shape))
    if (.not. contiguous) then
      call fail("cairn_state_add_array: entry '"//name//"': the array is not contiguous (an array section?); "// &
                "Cairn keeps its address, so pass a contiguous array", ierr)
      return
    end if
    if (size(global_shape) /= size(local_shape) .or. size(offset) /= size(local_shape)) then
      call fail("cairn_state_add_array: entry '"//name//"': global_shape and offset need one value per "// &
                "dimension of the array", ierr)
      return
    end if
    g = int(global_shape, c_int64_t)
    o = int(offset, c_int64_t)
    call finish(c_state_add_array_colmajor(st%ptr, c_string(name), int(dtype, c_int), &
                                           int(size(local_shape), c_int), g, o, local_shape, address), ierr)
  end subroutine add_sharded

  ! The body of cairn_state_add_replicated_array for every type and rank.
  subroutine add_replicated(st, name, dtype, shape_, contiguous, address, ierr)
    type(cairn_state), intent(in) :: st
    character(len=*), intent(in) :: name
    integer, intent(in) :: dtype
    integer(c_int64_t), intent(in) :: shape_(:)
    logical, intent(in) :: contiguous
    type(c_ptr), intent(in) :: address
    integer, intent(out), optional :: ierr
    if (.not. contiguous) then
      call fail("cairn_state_add_replicated_array: entry '"//name//"': the array is not contiguous "// &
                "(an array section?); Cairn keeps its address, so pass a contiguous array", ierr)
      return
    end if
    call finish(c_state_add_replicated_array(st%ptr, c_string(name), int(dtype, c_int), int(size(shape_), c_int), &
                                             shape_, address, 1_c_int), ierr)
  end subroutine add_replicated

  ! A usage error detected in Fortran, before any C call: kept for cairn_last_error() like the C
  ! API's messages.
  subroutine fail(message, ierr)
    character(len=*), intent(in) :: message
    integer, intent(out), optional :: ierr
    fortran_error = message
    if (present(ierr)) then
      ierr = CAIRN_ERR_USAGE
    else
      write (error_unit, '(a)') "cairn: "//message
      error stop CAIRN_ERR_USAGE
    end if
  end subroutine fail

  !> Compresses the array `name` already in `st` on disk with `method` (CAIRN_COMPRESSION_DEFLATE
  !> or CAIRN_COMPRESSION_ZSTD) at `level` (0 or absent: the method's default). Every rank must set
  !> the same. Not collective.
  subroutine cairn_state_set_compression(st, name, method, level, ierr)
    type(cairn_state), intent(in) :: st
    character(len=*), intent(in) :: name
    integer, intent(in) :: method
    integer, intent(in), optional :: level
    integer, intent(out), optional :: ierr
    integer(c_int) :: chosen
    chosen = 0
    if (present(level)) chosen = int(level, c_int)
    call finish(c_state_set_compression(st%ptr, c_string(name), int(method, c_int), chosen), ierr)
  end subroutine cairn_state_set_compression

  !> Adds a replicated int64 scalar (step, counters) read from and loaded into `value`, which must
  !> stay in place (TARGET). Not collective.
  subroutine cairn_state_add_int64(st, name, value, ierr)
    type(cairn_state), intent(in) :: st
    character(len=*), intent(in) :: name
    integer(c_int64_t), intent(inout), target :: value
    integer, intent(out), optional :: ierr
    call finish(c_state_add_int64(st%ptr, c_string(name), c_loc(value)), ierr)
  end subroutine cairn_state_add_int64

  !> Adds a replicated double scalar (time) read from and loaded into `value`, which must stay in
  !> place (TARGET). Not collective.
  subroutine cairn_state_add_double(st, name, value, ierr)
    type(cairn_state), intent(in) :: st
    character(len=*), intent(in) :: name
    real(c_double), intent(inout), target :: value
    integer, intent(out), optional :: ierr
    call finish(c_state_add_double(st%ptr, c_string(name), c_loc(value)), ierr)
  end subroutine cairn_state_add_double

  !> Collective. Saves `st` as checkpoint `id` (a directory) and returns once it is published.
  subroutine cairn_save(ck, st, id, ierr)
    type(cairn_checkpointer), intent(in) :: ck
    type(cairn_state), intent(in) :: st
    character(len=*), intent(in) :: id
    integer, intent(out), optional :: ierr
    call finish(c_save(ck%ptr, st%ptr, c_string(id)), ierr)
  end subroutine cairn_save

  !> Collective. Starts saving `st` as checkpoint `id`; returns once the bytes are copied, so the
  !> arrays may change at once. Complete `req` with cairn_wait, which reports the save's outcome.
  subroutine cairn_async_save(ck, st, id, req, ierr)
    type(cairn_checkpointer), intent(in) :: ck
    type(cairn_state), intent(in) :: st
    character(len=*), intent(in) :: id
    type(cairn_request), intent(out) :: req
    integer, intent(out), optional :: ierr
    call finish(c_async_save(ck%ptr, st%ptr, c_string(id), req%ptr), ierr)
  end subroutine cairn_async_save

  !> Waits for the save of `req`, frees it (req becomes null) and returns the save's status.
  subroutine cairn_wait(req, ierr)
    type(cairn_request), intent(inout) :: req
    integer, intent(out), optional :: ierr
    integer(c_int) :: status
    status = c_wait(req%ptr)
    req%ptr = c_null_ptr
    call finish(status, ierr)
  end subroutine cairn_wait

  !> done = .true. when the save of `req` has finished (then ierr is its status); cairn_wait must
  !> still be called to free the request.
  subroutine cairn_test(req, done, ierr)
    type(cairn_request), intent(in) :: req
    logical, intent(out) :: done
    integer, intent(out), optional :: ierr
    integer(c_int) :: flag, status
    flag = 0
    status = c_test(req%ptr, flag)
    done = flag /= 0
    call finish(status, ierr)
  end subroutine cairn_test

  !> Collective. Fills every entry of `st` from checkpoint `id`, whatever the decomposition at save.
  subroutine cairn_load(ck, st, id, ierr)
    type(cairn_checkpointer), intent(in) :: ck
    type(cairn_state), intent(in) :: st
    character(len=*), intent(in) :: id
    integer, intent(out), optional :: ierr
    call finish(c_load(ck%ptr, st%ptr, c_string(id)), ierr)
  end subroutine cairn_load

  !> Collective over `comm`: a manager of checkpoints "<root>/step_<step, 10 digits>" that saves
  !> every `every_steps` steps and keeps the newest `keep_last`; optionally also every
  !> `every_seconds` seconds, every checkpoint whose step is a multiple of `keep_every`, and
  !> verifies every checksum when looking for the latest (`deep_check`); `mtbf_seconds` schedules
  !> saves at the Young/Daly interval, `time_limit_seconds` and `exit_margin_seconds` set what
  !> cairn_manager_should_exit goes by; `local_root` (with `partner_copies`, `drain_bytes_per_second`)
  !> writes saves to a node-local tier first, `incremental` (with `full_every`) writes only the
  !> chunks that changed.
  subroutine cairn_manager_create(comm, root, every_steps, keep_last, mgr, ierr, every_seconds, keep_every, deep_check, &
                                  mtbf_seconds, time_limit_seconds, exit_margin_seconds, local_root, partner_copies, &
                                  drain_bytes_per_second, incremental, full_every)
    integer, intent(in) :: comm
    character(len=*), intent(in) :: root
    integer, intent(in) :: every_steps, keep_last
    type(cairn_manager), intent(out) :: mgr
    integer, intent(out), optional :: ierr
    real(c_double), intent(in), optional :: every_seconds
    integer, intent(in), optional :: keep_every
    logical, intent(in), optional :: deep_check
    real(c_double), intent(in), optional :: mtbf_seconds, time_limit_seconds, exit_margin_seconds
    character(len=*), intent(in), optional :: local_root
    logical, intent(in), optional :: partner_copies, incremental
    real(c_double), intent(in), optional :: drain_bytes_per_second
    integer, intent(in), optional :: full_every
    character(kind=c_char), allocatable, target :: local_root_c(:)
    integer :: i
    type(manager_options_c) :: options
    integer(c_int) :: status
    status = c_manager_options_init(options)
    options%every_steps = int(every_steps, c_int64_t)
    options%keep_last = int(keep_last, c_int)
    if (present(every_seconds)) options%every_seconds = every_seconds
    if (present(keep_every)) options%keep_every = int(keep_every, c_int64_t)
    if (present(deep_check)) options%deep_check = merge(1_c_int, 0_c_int, deep_check)
    if (present(mtbf_seconds)) options%mtbf_seconds = mtbf_seconds
    if (present(time_limit_seconds)) options%time_limit_seconds = time_limit_seconds
    if (present(exit_margin_seconds)) options%exit_margin_seconds = exit_margin_seconds
    if (present(local_root)) then
      ! A NUL-terminated copy that lives until the manager is created (the C API copies it).
      allocate (local_root_c(len(local_root) + 1))
      do i = 1, len(local_root)
        local_root_c(i) = local_root(i:i)
      end do
      local_root_c(len(local_root) + 1) = c_null_char
      options%local_root = c_loc(local_root_c)
    end if
    if (present(partner_copies)) options%partner_copies = merge(1_c_int, 0_c_int, partner_copies)
    if (present(drain_bytes_per_second)) options%drain_bytes_per_second = drain_bytes_per_second
    if (present(incremental)) options%incremental = merge(1_c_int, 0_c_int, incremental)
    if (present(full_every)) options%full_every = int(full_every, c_int)
    call finish(c_manager_create_f(int(comm, c_int), c_string(root), options, mgr%ptr), ierr)
  end subroutine cairn_manager_create

  !> Collective: waits for the save in flight, frees the manager and returns that save's status.
  subroutine cairn_manager_free(mgr, ierr)
    type(cairn_manager), intent(inout) :: mgr
    integer, intent(out), optional :: ierr
    integer(c_int) :: status
    status = c_manager_free(mgr%ptr)
    mgr%ptr = c_null_ptr
    call finish(status, ierr)
  end subroutine cairn_manager_free

  !> Collective. Starts an asynchronous save of `st` as the checkpoint of `step` when one is due
  !> (saved = .true.). A failure of the previous save is returned here.
  subroutine cairn_manager_save_if_due(mgr, st, step, saved, ierr)
    type(cairn_manager), intent(in) :: mgr
    type(cairn_state), intent(in) :: st
    integer(c_int64_t), intent(in) :: step
    logical, intent(out), optional :: saved
    integer, intent(out), optional :: ierr
    integer(c_int) :: flag, status
    flag = 0
    status = c_manager_save_if_due(mgr%ptr, st%ptr, step, flag)
    if (present(saved)) saved = flag /= 0
    call finish(status, ierr)
  end subroutine cairn_manager_save_if_due

  !> Collective. exit_now = .true. when the job should stop now to end before its wall-clock limit;
  !> `st` has then been saved as the checkpoint of `step` (unless already saved) and published.
  subroutine cairn_manager_should_exit(mgr, st, step, exit_now, ierr)
    type(cairn_manager), intent(in) :: mgr
    type(cairn_state), intent(in) :: st
    integer(c_int64_t), intent(in) :: step
    logical, intent(out) :: exit_now
    integer, intent(out), optional :: ierr
    integer(c_int) :: flag, status
    flag = 0
    status = c_manager_should_exit(mgr%ptr, st%ptr, step, flag)
    exit_now = flag /= 0
    call finish(status, ierr)
  end subroutine cairn_manager_should_exit

  !> Collective. Saves `st` as the checkpoint of `step` now and waits until it is published.
  subroutine cairn_manager_save(mgr, st, step, ierr)
    type(cairn_manager), intent(in) :: mgr
    type(cairn_state), intent(in) :: st
    integer(c_int64_t), intent(in) :: step
    integer, intent(out), optional :: ierr
    call finish(c_manager_save(mgr%ptr, st%ptr, step), ierr)
  end subroutine cairn_manager_save

  !> Collective. Waits for the save in flight and returns its status.
  subroutine cairn_manager_wait(mgr, ierr)
    type(cairn_manager), intent(in) :: mgr
    integer, intent(out), optional :: ierr
    call finish(c_manager_wait(mgr%ptr), ierr)
  end subroutine cairn_manager_wait

  !> Collective. The step of the newest good checkpoint (found = .true.), or found = .false.
  subroutine cairn_manager_latest(mgr, step, found, ierr)
    type(cairn_manager), intent(in) :: mgr
    integer(c_int64_t), intent(out) :: step
    logical, intent(out) :: found
    integer, intent(out), optional :: ierr
    integer(c_int) :: flag, status
    flag = 0
    step = 0
    status = c_manager_latest(mgr%ptr, step, flag)
    found = flag /= 0
    call finish(status, ierr)
  end subroutine cairn_manager_latest

  !> Collective. Loads the newest checkpoint that loads into `st` (restored = .true., step = its
  !> step), or restored = .false. and step = 0 when there is none: start fresh.
  subroutine cairn_manager_restore_or_start(mgr, st, step, restored, ierr)
    type(cairn_manager), intent(in) :: mgr
    type(cairn_state), intent(in) :: st
    integer(c_int64_t), intent(out) :: step
    logical, intent(out) :: restored
    integer, intent(out), optional :: ierr
    integer(c_int) :: flag, status
    flag = 0
    step = 0
    status = c_manager_restore_or_start(mgr%ptr, st%ptr, step, flag)
    restored = flag /= 0
    call finish(status, ierr)
  end subroutine cairn_manager_restore_or_start

  ! ---- the specific procedures of the generic cairn_state_add_array and
  ! ---- cairn_state_add_replicated_array, one per type and rank

  subroutine add_array_r8_1(st, name, array, global_shape, offset, ierr)
    type(cairn_state), intent(in) :: st
    character(len=*), intent(in) :: name
    real(c_double), intent(inout), target :: array(:)
    integer, intent(in) :: global_shape(:), offset(:)
    integer, intent(out), optional :: ierr
    type(c_ptr) :: address
    address = c_null_ptr
    if (size(array) > 0 .and. is_contiguous(array)) address = c_loc(array)
    call add_sharded(st, name, CAIRN_FLOAT64, shape(array, kind=c_int64_t), is_contiguous(array), address, &
                     global_shape, offset, ierr)
  end subroutine add_array_r8_1

  subroutine add_replicated_r8_1(st, name, array, ierr)
    type(cairn_state), intent(in) :: st
    character(len=*), intent(in) :: name
    real(c_double), intent(inout), target :: array(:)
    integer, intent(out), optional :: ierr
    type(c_ptr) :: address
    address = c_null_ptr
    if (size(array) > 0 .and. is_contiguous(array)) address = c_loc(array)
    call add_replicated(st, name, CAIRN_FLOAT64, shape(array, kind=c_int64_t), is_contiguous(array), address, ierr)
  end subroutine add_replicated_r8_1

  subroutine add_array_r8_2(st, name, array, global_shape, offset, ierr)
    type(cairn_state), intent(in) :: st
    character(len=*), intent(in) :: name
    real(c_double), intent(inout), target :: array(:,:)
    integer, intent(in) :: global_shape(:), offset(:)
    integer, intent(out), optional :: ierr
    type(c_ptr) :: address
    address = c_null_ptr
    if (size(array) > 0 .and. is_contiguous(array)) address = c_loc(array)
    call add_sharded(st, name, CAIRN_FLOAT64, shape(array, kind=c_int64_t), is_contiguous(array), address, &
                     global_shape, offset, ierr)
  end subroutine add_array_r8_2

  subroutine add_replicated_r8_2(st, name, array, ierr)
    type(cairn_state), intent(in) :: st
    character(len=*), intent(in) :: name
    real(c_double), intent(inout), target :: array(:,:)
    integer, intent(out), optional :: ierr
    type(c_ptr) :: address
    address = c_null_ptr
    if (size(array) > 0 .and. is_contiguous(array)) address = c_loc(array)
    call add_replicated(st, name, CAIRN_FLOAT64, shape(array, kind=c_int64_t), is_contiguous(array), address, ierr)
  end subroutine add_replicated_r8_2

  subroutine add_array_r8_3(st, name, array, global_shape, offset, ierr)
    type(cairn_state), intent(in) :: st
    character(len=*), intent(in) :: name
    real(c_double), intent(inout), target :: array(:,:,:)
    integer, intent(in) :: global_shape(:), offset(:)
    integer, intent(out), optional :: ierr
    type(c_ptr) :: address
    address = c_null_ptr
    if (size(array) > 0 .and. is_contiguous(array)) address = c_loc(array)
    call add_sharded(st, name, CAIRN_FLOAT64, shape(array, kind=c_int64_t), is_contiguous(array), address, &
                     global_shape, offset, ierr)
  end subroutine add_array_r8_3

  subroutine add_replicated_r8_3(st, name, array, ierr)
    type(cairn_state), intent(in) :: st
    character(len=*), intent(in) :: name
    real(c_double), intent(inout), target :: array(:,:,:)
    integer, intent(out), optional :: ierr
    type(c_ptr) :: address
    address = c_null_ptr
    if (size(array) > 0 .and. is_contiguous(array)) address = c_loc(array)
    call add_replicated(st, name, CAIRN_FLOAT64, shape(array, kind=c_int64_t), is_contiguous(array), address, ierr)
  end subroutine add_replicated_r8_3

  subroutine add_array_r4_1(st, name, array, global_shape, offset, ierr)
    type(cairn_state), intent(in) :: st
    character(len=*), intent(in) :: name
    real(c_float), intent(inout), target :: array(:)
    integer, intent(in) :: global_shape(:), offset(:)
    integer, intent(out), optional :: ierr
    type(c_ptr) :: address
    address = c_null_ptr
    if (size(array) > 0 .and. is_contiguous(array)) address = c_loc(array)
    call add_sharded(st, name, CAIRN_FLOAT32, shape(array, kind=c_int64_t), is_contiguous(array), address, &
                     global_shape, offset, ierr)
  end subroutine add_array_r4_1

  subroutine add_replicated_r4_1(st, name, array, ierr)
    type(cairn_state), intent(in) :: st
    character(len=*), intent(in) :: name
    real(c_float), intent(inout), target :: array(:)
    integer, intent(out), optional :: ierr
    type(c_ptr) :: address
    address = c_null_ptr
    if (size(array) > 0 .and. is_contiguous(array)) address = c_loc(array)
    call add_replicated(st, name, CAIRN_FLOAT32, shape(array, kind=c_int64_t), is_contiguous(array), address, ierr)
  end subroutine add_replicated_r4_1

  subroutine add_array_r4_2(st, name, array, global_shape, offset, ierr)
    type(cairn_state), intent(in) :: st
    character(len=*), intent(in) :: name
    real(c_float), intent(inout), target :: array(:,:)
    integer, intent(in) :: global_shape(:), offset(:)
    integer, intent(out), optional :: ierr
    type(c_ptr) :: address
    address = c_null_ptr
    if (size(array) > 0 .and. is_contiguous(array)) address = c_loc(array)
    call add_sharded(st, name, CAIRN_FLOAT32, shape(array, kind=c_int64_t), is_contiguous(array), address, &
                     global_shape, offset, ierr)
  end subroutine add_array_r4_2

  subroutine add_replicated_r4_2(st, name, array, ierr)
    type(cairn_state), intent(in) :: st
    character(len=*), intent(in) :: name
    real(c_float), intent(inout), target :: array(:,:)
    integer, intent(out), optional :: ierr
    type(c_ptr) :: address
    address = c_null_ptr
    if (size(array) > 0 .and. is_contiguous(array)) address = c_loc(array)
    call add_replicated(st, name, CAIRN_FLOAT32, shape(array, kind=c_int64_t), is_contiguous(array), address, ierr)
  end subroutine add_replicated_r4_2

  subroutine add_array_r4_3(st, name, array, global_shape, offset, ierr)
    type(cairn_state), intent(in) :: st
    character(len=*), intent(in) :: name
    real(c_float), intent(inout), target :: array(:,:,:)
    integer, intent(in) :: global_shape(:), offset(:)
    integer, intent(out), optional :: ierr
    type(c_ptr) :: address
    address = c_null_ptr
    if (size(array) > 0 .and. is_contiguous(array)) address = c_loc(array)
    call add_sharded(st, name, CAIRN_FLOAT32, shape(array, kind=c_int64_t), is_contiguous(array), address, &
                     global_shape, offset, ierr)
  end subroutine add_array_r4_3

  subroutine add_replicated_r4_3(st, name, array, ierr)
    type(cairn_state), intent(in) :: st
    character(len=*), intent(in) :: name
    real(c_float), intent(inout), target :: array(:,:,:)
    integer, intent(out), optional :: ierr
    type(c_ptr) :: address
    address = c_null_ptr
    if (size(array) > 0 .and. is_contiguous(array)) address = c_loc(array)
    call add_replicated(st, name, CAIRN_FLOAT32, shape(array, kind=c_int64_t), is_contiguous(array), address, ierr)
  end subroutine add_replicated_r4_3

  subroutine add_array_i4_1(st, name, array, global_shape, offset, ierr)
    type(cairn_state), intent(in) :: st
    character(len=*), intent(in) :: name
    integer(c_int32_t), intent(inout), target :: array(:)
    integer, intent(in) :: global_shape(:), offset(:)
    integer, intent(out), optional :: ierr
    type(c_ptr) :: address
    address = c_null_ptr
    if (size(array) > 0 .and. is_contiguous(array)) address = c_loc(array)
    call add_sharded(st, name, CAIRN_INT32, shape(array, kind=c_int64_t), is_contiguous(array), address, &
                     global_shape, offset, ierr)
  end subroutine add_array_i4_1

  subroutine add_replicated_i4_1(st, name, array, ierr)
    type(cairn_state), intent(in) :: st
    character(len=*), intent(in) :: name
    integer(c_int32_t), intent(inout), target :: array(:)
    integer, intent(out), optional :: ierr
    type(c_ptr) :: address
    address = c_null_ptr
    if (size(array) > 0 .and. is_contiguous(array)) address = c_loc(array)
    call add_replicated(st, name, CAIRN_INT32, shape(array, kind=c_int64_t), is_contiguous(array), address, ierr)
  end subroutine add_replicated_i4_1

  subroutine add_array_i4_2(st, name, array, global_shape, offset, ierr)
    type(cairn_state), intent(in) :: st
    character(len=*), intent(in) :: name
    integer(c_int32_t), intent(inout), target :: array(:,:)
    integer, intent(in) :: global_shape(:), offset(:)
    integer, intent(out), optional :: ierr
    type(c_ptr) :: address
    address = c_null_ptr
    if (size(array) > 0 .and. is_contiguous(array)) address = c_loc(array)
    call add_sharded(st, name, CAIRN_INT32, shape(array, kind=c_int64_t), is_contiguous(array), address, &
                     global_shape, offset, ierr)
  end subroutine add_array_i4_2

  subroutine add_replicated_i4_2(st, name, array, ierr)
    type(cairn_state), intent(in) :: st
    character(len=*), intent(in) :: name
    integer(c_int32_t), intent(inout), target :: array(:,:)
    integer, intent(out), optional :: ierr
    type(c_ptr) :: address
    address = c_null_ptr
    if (size(array) > 0 .and. is_contiguous(array)) address = c_loc(array)
    call add_replicated(st, name, CAIRN_INT32, shape(array, kind=c_int64_t), is_contiguous(array), address, ierr)
  end subroutine add_replicated_i4_2

  subroutine add_array_i4_3(st, name, array, global_shape, offset, ierr)
    type(cairn_state), intent(in) :: st
    character(len=*), intent(in) :: name
    integer(c_int32_t), intent(inout), target :: array(:,:,:)
    integer, intent(in) :: global_shape(:), offset(:)
    integer, intent(out), optional :: ierr
    type(c_ptr) :: address
    address = c_null_ptr
    if (size(array) > 0 .and. is_contiguous(array)) address = c_loc(array)
    call add_sharded(st, name, CAIRN_INT32, shape(array, kind=c_int64_t), is_contiguous(array), address, &
                     global_shape, offset, ierr)
  end subroutine add_array_i4_3

  subroutine add_replicated_i4_3(st, name, array, ierr)
    type(cairn_state), intent(in) :: st
    character(len=*), intent(in) :: name
    integer(c_int32_t), intent(inout), target :: array(:,:,:)
    integer, intent(out), optional :: ierr
    type(c_ptr) :: address
    address = c_null_ptr
    if (size(array) > 0 .and. is_contiguous(array)) address = c_loc(array)
    call add_replicated(st, name, CAIRN_INT32, shape(array, kind=c_int64_t), is_contiguous(array), address, ierr)
  end subroutine add_replicated_i4_3

  subroutine add_array_i8_1(st, name, array, global_shape, offset, ierr)
    type(cairn_state), intent(in) :: st
    character(len=*), intent(in) :: name
    integer(c_int64_t), intent(inout), target :: array(:)
    integer, intent(in) :: global_shape(:), offset(:)
    integer, intent(out), optional :: ierr
    type(c_ptr) :: address
    address = c_null_ptr
    if (size(array) > 0 .and. is_contiguous(array)) address = c_loc(array)
    call add_sharded(st, name, CAIRN_INT64, shape(array, kind=c_int64_t), is_contiguous(array), address, &
                     global_shape, offset, ierr)
  end subroutine add_array_i8_1

  subroutine add_replicated_i8_1(st, name, array, ierr)
    type(cairn_state), intent(in) :: st
    character(len=*), intent(in) :: name
    integer(c_int64_t), intent(inout), target :: array(:)
    integer, intent(out), optional :: ierr
    type(c_ptr) :: address
    address = c_null_ptr
    if (size(array) > 0 .and. is_contiguous(array)) address = c_loc(array)
    call add_replicated(st, name, CAIRN_INT64, shape(array, kind=c_int64_t), is_contiguous(array), address, ierr)
  end subroutine add_replicated_i8_1

  subroutine add_array_i8_2(st, name, array, global_shape, offset, ierr)
    type(cairn_state), intent(in) :: st
    character(len=*), intent(in) :: name
    integer(c_int64_t), intent(inout), target :: array(:,:)
    integer, intent(in) :: global_shape(:), offset(:)
    integer, intent(out), optional :: ierr
    type(c_ptr) :: address
    address = c_null_ptr
    if (size(array) > 0 .and. is_contiguous(array)) address = c_loc(array)
    call add_sharded(st, name, CAIRN_INT64, shape(array, kind=c_int64_t), is_contiguous(array), address, &
                     global_shape, offset, ierr)
  end subroutine add_array_i8_2

  subroutine add_replicated_i8_2(st, name, array, ierr)
    type(cairn_state), intent(in) :: st
    character(len=*), intent(in) :: name
    integer(c_int64_t), intent(inout), target :: array(:,:)
    integer, intent(out), optional :: ierr
    type(c_ptr) :: address
    address = c_null_ptr
    if (size(array) > 0 .and. is_contiguous(array)) address = c_loc(array)
    call add_replicated(st, name, CAIRN_INT64, shape(array, kind=c_int64_t), is_contiguous(array), address, ierr)
  end subroutine add_replicated_i8_2

  subroutine add_array_i8_3(st, name, array, global_shape, offset, ierr)
    type(cairn_state), intent(in) :: st
    character(len=*), intent(in) :: name
    integer(c_int64_t), intent(inout), target :: array(:,:,:)
    integer, intent(in) :: global_shape(:), offset(:)
    integer, intent(out), optional :: ierr
    type(c_ptr) :: address
    address = c_null_ptr
    if (size(array) > 0 .and. is_contiguous(array)) address = c_loc(array)
    call add_sharded(st, name, CAIRN_INT64, shape(array, kind=c_int64_t), is_contiguous(array), address, &
                     global_shape, offset, ierr)
  end subroutine add_array_i8_3

  subroutine add_replicated_i8_3(st, name, array, ierr)
    type(cairn_state), intent(in) :: st
    character(len=*), intent(in) :: name
    integer(c_int64_t), intent(inout), target :: array(:,:,:)
    integer, intent(out), optional :: ierr
    type(c_ptr) :: address
    address = c_null_ptr
    if (size(array) > 0 .and. is_contiguous(array)) address = c_loc(array)
    call add_replicated(st, name, CAIRN_INT64, shape(array, kind=c_int64_t), is_contiguous(array), address, ierr)
  end subroutine add_replicated_i8_3
  subroutine add_bytes_i1(st, name, buffer, ierr)
    type(cairn_state), intent(in) :: st
    character(len=*), intent(in) :: name
    integer(c_int8_t), intent(inout), target :: buffer(:)
    integer, intent(out), optional :: ierr
    if (.not. is_contiguous(buffer) .or. size(buffer) == 0) then
      call fail("cairn_state_add_bytes: entry '"//name//"': the buffer must be a contiguous, non-empty array", ierr)
      return
    end if
    call finish(c_state_add_bytes(st%ptr, c_string(name), c_loc(buffer), &
                                  int(size(buffer), c_int64_t) * int(storage_size(buffer) / 8, c_int64_t)), ierr)
  end subroutine add_bytes_i1

  subroutine add_bytes_i4(st, name, buffer, ierr)
    type(cairn_state), intent(in) :: st
    character(len=*), intent(in) :: name
    integer(c_int32_t), intent(inout), target :: buffer(:)
    integer, intent(out), optional :: ierr
    if (.not. is_contiguous(buffer) .or. size(buffer) == 0) then
      call fail("cairn_state_add_bytes: entry '"//name//"': the buffer must be a contiguous, non-empty array", ierr)
      return
    end if
    call finish(c_state_add_bytes(st%ptr, c_string(name), c_loc(buffer), &
                                  int(size(buffer), c_int64_t) * int(storage_size(buffer) / 8, c_int64_t)), ierr)
  end subroutine add_bytes_i4

  subroutine add_bytes_i8(st, name, buffer, ierr)
    type(cairn_state), intent(in) :: st
    character(len=*), intent(in) :: name
    integer(c_int64_t), intent(inout), target :: buffer(:)
    integer, intent(out), optional :: ierr
    if (.not. is_contiguous(buffer) .or. size(buffer) == 0) then
      call fail("cairn_state_add_bytes: entry '"//name//"': the buffer must be a contiguous, non-empty array", ierr)
      return
    end if
    call finish(c_state_add_bytes(st%ptr, c_string(name), c_loc(buffer), &
                                  int(size(buffer), c_int64_t) * int(storage_size(buffer) / 8, c_int64_t)), ierr)
  end subroutine add_bytes_i8

  subroutine add_bytes_r8(st, name, buffer, ierr)
    type(cairn_state), intent(in) :: st
    character(len=*), intent(in) :: name
    real(c_double), intent(inout), target :: buffer(:)
    integer, intent(out), optional :: ierr
    if (.not. is_contiguous(buffer) .or. size(buffer) == 0) then
      call fail("cairn_state_add_bytes: entry '"//name//"': the buffer must be a contiguous, non-empty array", ierr)
      return
    end if
    call finish(c_state_add_bytes(st%ptr, c_string(name), c_loc(buffer), &
                                  int(size(buffer), c_int64_t) * int(storage_size(buffer) / 8, c_int64_t)), ierr)
  end subroutine add_bytes_r8
end module cairn
