require ["encoded-character", "include", "variables", "environment"];
set "x" "${hex:41 42}${unicode:1F600}";
if environment :matches "remote-host" "*.example.org" { include :personal :optional "extra"; }
global "g";
include :global :once "common";
