require ["include", "variables"];
global "trail";
set "trail" "${trail}G";
