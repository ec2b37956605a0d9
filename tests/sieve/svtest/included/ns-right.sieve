require ["include", "variables"];
global "trail";
include :once "ns-personal";
set "trail" "${trail}R";
