package pgmsg

// Frontend (client to server) message types.
const (
	Bind            byte = 'B'
	Close           byte = 'C'
	CopyData        byte = 'd' // both directions
	CopyDone        byte = 'c' // both directions
	CopyFail        byte = 'f'
	Describe        byte = 'D'
	Execute         byte = 'E'
	Flush           byte = 'H'
	FunctionCall    byte = 'F'
	Parse           byte = 'P'
	PasswordMessage byte = 'p' // also SASLInitialResponse, SASLResponse, GSSResponse
	Query           byte = 'Q'
	Sync            byte = 'S'
	Terminate       byte = 'X'
)

// Backend (server to client) message types.
const (
	Authentication           byte = 'R'
	BackendKeyData           byte = 'K'
	BindComplete             byte = '2'
	CloseComplete            byte = '3'
	CommandComplete          byte = 'C'
	CopyBothResponse         byte = 'W'
	CopyInResponse           byte = 'G'
	CopyOutResponse          byte = 'H'
	DataRow                  byte = 'D'
	EmptyQueryResponse       byte = 'I'
	ErrorResponse            byte = 'E'
	FunctionCallResponse     byte = 'V'
	NegotiateProtocolVersion byte = 'v'
	NoData                   byte = 'n'
	NoticeResponse           byte = 'N'
	NotificationResponse     byte = 'A'
	ParameterDescription     byte = 't'
	ParameterStatus          byte = 'S'
	ParseComplete            byte = '1'
	PortalSuspended          byte = 's'
	ReadyForQuery            byte = 'Z'
	RowDescription           byte = 'T'
)

// Targets of Describe and Close.
const (
	TargetStatement byte = 'S'
	TargetPortal    byte = 'P'
)

// One-byte answers to SSLRequest and GSSENCRequest, sent before any
// message.
const (
	SSLAccepted       byte = 'S' // go on with the TLS handshake
	GSSAccepted       byte = 'G' // go on with GSSAPI encryption
	EncryptionRefused byte = 'N' // go on unencrypted
)

// Transaction status in ReadyForQuery.
const (
	TxIdle   byte = 'I'
	TxInTx   byte = 'T'
	TxFailed byte = 'E'
)

// EndsRequest reports whether a frontend message of type t gets its own
// ReadyForQuery: Sync, a simple Query, a FunctionCall.
func EndsRequest(t byte) bool { return t == Sync || t == Query || t == FunctionCall }
