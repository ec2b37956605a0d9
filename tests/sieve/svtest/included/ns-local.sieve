require ["include", "variables"];
set "local" "inner";
global "trail";
set "trail" "${trail}${local}";
